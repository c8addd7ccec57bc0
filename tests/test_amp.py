"""Mixed precision: tools/train.py --amp on CPU runs bf16 autocast through
our AutocastOptimWrapper; CUDA keeps mmengine's AmpOptimWrapper."""
import json
import os
import sys

import pytest
import torch
from torch import nn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PANOPTIC = os.path.join(REPO, 'configs/quickstart/mask2former_r18_toy-panoptic.py')
sys.path.insert(0, os.path.join(REPO, 'tools'))


def test_wrapper_choice_per_device():
    from m2f_mm.engine import amp_optim_wrapper_cfg
    base = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4),
                clip_grad=dict(max_norm=0.01))
    cpu = amp_optim_wrapper_cfg(base, 'cpu')
    assert cpu == dict(base, type='m2f_mm.AutocastOptimWrapper', dtype='bfloat16')
    cpu = amp_optim_wrapper_cfg(dict(base, type='AmpOptimWrapper', loss_scale=512.), 'cpu')
    assert cpu['type'] == 'm2f_mm.AutocastOptimWrapper' and 'loss_scale' not in cpu
    with pytest.raises(ValueError, match='bfloat16 only'):
        amp_optim_wrapper_cfg(base, 'cpu', 'float16')
    cuda = amp_optim_wrapper_cfg(base, 'cuda')
    assert cuda == dict(base, type='AmpOptimWrapper', loss_scale='dynamic',
                        dtype='float16')
    assert amp_optim_wrapper_cfg(base, 'cuda', 'float16') == cuda
    # bfloat16 needs no loss scale on CUDA either
    bf16 = amp_optim_wrapper_cfg(dict(base, loss_scale=512.), 'cuda', 'bfloat16')
    assert bf16 == dict(base, type='m2f_mm.AutocastOptimWrapper', dtype='bfloat16')


def test_autocast_optim_wrapper_runs_bf16_forward_and_float32_step():
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
    wrapper = build_optim_wrapper(model, dict(
        type='m2f_mm.AutocastOptimWrapper',
        optimizer=dict(type='SGD', lr=0.1)))
    x = torch.randn(4, 8)
    before = [p.detach().clone() for p in model.parameters()]
    with wrapper.optim_context(model):
        y = model(x)
    assert y.dtype == torch.bfloat16
    wrapper.update_params(y.float().pow(2).mean())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert model(x).dtype == torch.float32  # outside the context: float32
    with pytest.raises(ValueError, match='bfloat16 only'):
        build_optim_wrapper(model, dict(type='m2f_mm.AutocastOptimWrapper',
                                        dtype='float16',
                                        optimizer=dict(type='SGD', lr=0.1)))


@pytest.fixture(scope='module')
def toy_data(tmp_path_factory):
    from make_toy_dataset import make_toy_dataset
    root = tmp_path_factory.mktemp('toy_amp')
    make_toy_dataset(str(root), num_train=4, num_val=2, size=64, seed=5)
    return str(root) + '/'


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU path')
def test_train_tool_amp_on_cpu(toy_data, tmp_path):
    """``train.py --amp`` on CPU trains (mmengine's own wrapper refuses the
    CPU) with finite losses."""
    import train
    work = tmp_path / 'w'
    train.main([PANOPTIC, '--amp', '--work-dir', str(work), '--cfg-options',
                f'train_dataloader.dataset.data_root={toy_data}',
                f'val_dataloader.dataset.data_root={toy_data}',
                'train_cfg.max_iters=2', 'train_cfg.val_interval=100',
                'default_hooks.logger.interval=1', 'log_processor.window_size=1',
                'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
                'train_dataloader.persistent_workers=False',
                'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
                f'val_evaluator.0.ann_file={toy_data}annotations/panoptic_val.json',
                f'val_evaluator.0.seg_prefix={toy_data}annotations/panoptic_val/',
                f'val_evaluator.1.ann_file={toy_data}annotations/instances_val.json'])
    scalars = [os.path.join(d, f) for d, _, fs in os.walk(work) for f in fs
               if f == 'scalars.json']
    logs = [json.loads(line) for line in open(scalars[0])]
    losses = [entry['loss'] for entry in logs if 'loss' in entry]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    dumped = [os.path.join(d, f) for d, _, fs in os.walk(work) for f in fs
              if f.endswith('.py')]
    assert "type='m2f_mm.AutocastOptimWrapper'" in open(dumped[0]).read()


def test_train_tool_refuses_fp16_on_cpu(tmp_path):
    import train
    if torch.cuda.is_available():
        pytest.skip('checks the CPU path')
    with pytest.raises(SystemExit, match='bfloat16 only'):
        train.main([PANOPTIC, '--amp', '--amp-dtype', 'float16',
                    '--work-dir', str(tmp_path)])


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU path')
def test_test_tool_amp_runs_the_network_in_bf16(toy_data, tmp_path, monkeypatch):
    """``test.py --amp`` evaluates under bf16 autocast (our test loop), the
    fusion in float32; the metrics come out as in a float32 run."""
    import test as test_tool
    from m2f_mm.engine import AutocastTestLoop
    from m2f_mm.models.heads.mask2former_head import Mask2FormerHead
    seen = []
    real = Mask2FormerHead.forward

    def forward(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        seen.append(out[0][-1].dtype)  # class logits of the last set
        return out
    monkeypatch.setattr(Mask2FormerHead, 'forward', forward)
    work = tmp_path / 'w'
    import train
    train.main([PANOPTIC, '--work-dir', str(work), '--cfg-options',
                f'train_dataloader.dataset.data_root={toy_data}',
                f'val_dataloader.dataset.data_root={toy_data}',
                f'val_evaluator.0.ann_file={toy_data}annotations/panoptic_val.json',
                f'val_evaluator.0.seg_prefix={toy_data}annotations/panoptic_val/',
                f'val_evaluator.1.ann_file={toy_data}annotations/instances_val.json',
                'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
                'train_cfg.max_iters=1', 'train_cfg.val_interval=100',
                'default_hooks.checkpoint.interval=1',
                'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
                'train_dataloader.persistent_workers=False'])
    options = [f'test_dataloader.dataset.data_root={toy_data}',
               'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
               f'test_evaluator.0.ann_file={toy_data}annotations/panoptic_val.json',
               f'test_evaluator.0.seg_prefix={toy_data}annotations/panoptic_val/',
               f'test_evaluator.1.ann_file={toy_data}annotations/instances_val.json']
    seen.clear()
    args = [PANOPTIC, str(work / 'iter_1.pth'), '--work-dir', str(tmp_path / 't')]
    metrics = test_tool.main(args + ['--amp', '--cfg-options'] + options)
    assert seen and set(seen) == {torch.bfloat16}
    assert 'coco_panoptic/PQ' in metrics and 'sem_seg/mIoU' in metrics
    cfg = test_tool.build_cfg(test_tool.parse_args(args + ['--amp']))
    assert cfg.test_cfg == dict(type='m2f_mm.AutocastTestLoop', dtype='bfloat16')
    assert AutocastTestLoop.__mro__[1].__name__ == 'TestLoop'
    with pytest.raises(SystemExit, match='bfloat16 only'):
        test_tool.build_cfg(test_tool.parse_args(args + ['--amp', '--amp-dtype', 'float16']))
    with pytest.raises(SystemExit, match='needs --amp'):
        test_tool.build_cfg(test_tool.parse_args(args + ['--amp-dtype', 'bfloat16']))
