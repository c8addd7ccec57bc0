"""tools/: distributed training over gloo, train → test round trip, bad
arguments."""
import os
import subprocess
import sys

import pytest
import torch

from child_env import child_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(REPO, 'configs/quickstart/mask2former_r18_toy-panoptic.py')


@pytest.fixture(scope='module')
def toy_data(tmp_path_factory):
    sys.path.insert(0, os.path.join(REPO, 'tools'))
    from make_toy_dataset import make_toy_dataset
    root = tmp_path_factory.mktemp('toy')
    make_toy_dataset(str(root), num_train=8, num_val=4, size=64, seed=0)
    return str(root) + '/'


def test_two_process_gloo_training_keeps_ranks_in_sync(toy_data, tmp_path):
    """2 CPU processes under torchrun (DDP, gloo): after a few iterations
    both ranks hold the same parameters, and the loss was all-reduced."""
    env = child_env(OMP_NUM_THREADS='1')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
           '--master_port=29517', os.path.join(REPO, 'tests/dist_train_worker.py'),
           QUICKSTART, toy_data, str(tmp_path), '3']
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    p0 = torch.load(tmp_path / 'params_rank0.pth')
    p1 = torch.load(tmp_path / 'params_rank1.pth')
    assert p0.keys() == p1.keys() and len(p0) > 100
    for k in p0:
        assert torch.equal(p0[k], p1[k]), k
    assert (tmp_path / 'iter_3.pth').exists()


def test_train_then_test_reproduces_metrics(toy_data, tmp_path):
    """tools/train.py validates at its last iteration; tools/test.py on the
    saved checkpoint reports the same metrics."""
    sys.path.insert(0, os.path.join(REPO, 'tools'))
    import test as test_tool
    import train as train_tool
    opts = ['--cfg-options', f'train_dataloader.dataset.data_root={toy_data}',
            f'val_dataloader.dataset.data_root={toy_data}',
            f'test_dataloader.dataset.data_root={toy_data}',
            f'val_evaluator.0.ann_file={toy_data}annotations/panoptic_val.json',
            f'val_evaluator.0.seg_prefix={toy_data}annotations/panoptic_val/',
            f'val_evaluator.1.ann_file={toy_data}annotations/instances_val.json',
            f'test_evaluator.0.ann_file={toy_data}annotations/panoptic_val.json',
            f'test_evaluator.0.seg_prefix={toy_data}annotations/panoptic_val/',
            f'test_evaluator.1.ann_file={toy_data}annotations/instances_val.json',
            'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
            'default_hooks.checkpoint.interval=4',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
            'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False']
    work = str(tmp_path / 'work')
    train_tool.main([QUICKSTART, '--work-dir', work] + opts)
    ckpt = os.path.join(work, 'iter_4.pth')
    assert os.path.exists(ckpt)
    import json
    logs = [os.path.join(dp, f) for dp, _, fs in os.walk(work) for f in fs
            if f == 'scalars.json']
    val = [json.loads(line) for line in open(logs[0]) if 'coco_panoptic/PQ' in line][-1]
    metrics = test_tool.main([QUICKSTART, ckpt, '--work-dir', work,
                              '--out', str(tmp_path / 'preds.pkl')] + opts)
    for key in ('coco_panoptic/PQ', 'coco/segm_mAP', 'sem_seg/mIoU'):
        assert metrics[key] == pytest.approx(val[key], abs=1e-4), key
    assert (tmp_path / 'preds.pkl').stat().st_size > 0


@pytest.mark.parametrize('argv, message', [
    (['no/such/config.py', 'x.pth'], 'config no/such/config.py does not exist'),
    ([QUICKSTART, 'no/such.pth'], 'checkpoint no/such.pth does not exist'),
])
def test_test_tool_bad_paths(argv, message):
    sys.path.insert(0, os.path.join(REPO, 'tools'))
    import test as test_tool
    with pytest.raises(SystemExit, match=message):
        test_tool.main(argv)


def test_demo_writes_overlay_and_json(toy_data, tmp_path):
    """tools/demo.py on an untrained model (which predicts no panoptic
    segment: MMDet's visualizer used to fail on that) writes both files."""
    sys.path.insert(0, os.path.join(REPO, 'tools'))
    import demo
    import quickstart
    ckpt = quickstart.untrained_checkpoint(str(tmp_path))
    image = os.path.join(toy_data, 'val', sorted(os.listdir(os.path.join(toy_data, 'val')))[0])
    demo.main([image, QUICKSTART, ckpt, '--out-dir', str(tmp_path / 'out')])
    stem = os.path.splitext(os.path.basename(image))[0]
    assert (tmp_path / 'out' / 'vis' / f'{stem}.png').stat().st_size > 0
    import json
    pred = json.load(open(tmp_path / 'out' / 'preds' / f'{stem}.json'))
    assert len(pred['labels']) == len(pred['scores']) > 0


def test_missing_pretrained_backbone_is_one_line(tmp_path):
    """The quickstart config's backbone checkpoint (written by
    tools/pretrain_backbone.py) missing: one line naming the key, the path
    and the command that writes it."""
    sys.path.insert(0, os.path.join(REPO, 'tools'))
    import train as train_tool
    absent = str(tmp_path / 'absent.pth')
    with pytest.raises(SystemExit) as e:
        train_tool.main([os.path.join(
            REPO, 'configs/quickstart/mask2former_r18-toyshapes_toy-panoptic.py'),
            '--work-dir', str(tmp_path / 'w'),
            '--cfg-options', f'model.backbone.init_cfg.checkpoint={absent}'])
    msg = str(e.value)
    assert f'model.backbone.init_cfg.checkpoint {absent} does not exist' in msg
    assert f'tools/pretrain_backbone.py --out {absent}' in msg and '\n' not in msg
    assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('config, missing', [
    ('configs/mask2former_r50_coco-panoptic.py',
     'data/coco/annotations/panoptic_train2017.json: annotation file not found'),
    ('configs/mask2former_r50_ade20k-semantic.py',
     'data/ade/ADEChallengeData2016/images/training'),
])
def test_missing_dataset_is_one_line(config, missing, tmp_path, monkeypatch):
    """Without the dataset, train.py stops with one line naming the missing
    path and where to read how to get it."""
    sys.path.insert(0, os.path.join(REPO, 'tools'))
    import train as train_tool
    monkeypatch.chdir(tmp_path)  # no data/ here
    with pytest.raises(SystemExit) as e:
        train_tool.main([os.path.join(REPO, config), '--work-dir', str(tmp_path / 'w')])
    msg = str(e.value)
    assert missing in msg and "README's 'Datasets'" in msg and '\n' not in msg
