"""Our head in MMSegmentation 1.2's ``EncoderDecoder``: parity with MMSeg's
own Mask2Former on shared weights, checkpoints shared with the MMDet host,
whole / slide / TTA inference, a few Runner iterations with ``IoUMetric``,
awkward label maps, and the semantic configs (CPU, tiny shapes)."""
import copy
import os

import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.hooks import Hook
from mmengine.registry import DefaultScope
from PIL import Image

from reference_models_mmseg import (build_seg_pair, make_seg_sample,
                                    ours_seg_cfg)
from synthetic import losses_with_same_points

H, W = 60, 64  # padded to 64x64 by the preprocessor
CONFIGS = os.path.join(os.path.dirname(__file__), '..', 'configs')


@pytest.fixture(autouse=True, scope='module')
def _mmseg_scope_one_thread():
    """Build in MMSeg's scope (as ``default_scope='mmseg'``), leaving the
    scope of other test modules as it was. One intra-op thread: on a shared
    2-core machine, two spinning OpenMP threads made this file ~7x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with DefaultScope.overwrite_default_scope('mmseg'):
            yield
    finally:
        torch.set_num_threads(threads)


def _models():
    from mmseg.registry import MODELS
    return MODELS


def _batch(model, n=2, seed=0, training=False, h=H, w=W, **sample_kwargs):
    """Random uint8 images and semantic samples through the model's
    ``SegDataPreProcessor``."""
    g = torch.Generator().manual_seed(seed)
    imgs = [torch.randint(0, 256, (3, h, w), generator=g).to(torch.uint8)
            for _ in range(n)]
    samples = [make_seg_sample(h, w, seed=seed + i, **sample_kwargs)
               for i in range(n)]
    return model.data_preprocessor(dict(inputs=imgs, data_samples=samples),
                                   training)


@pytest.fixture(scope='module')
def pair():
    return build_seg_pair(seed=1)


# ----------------------------------------------------------------- parity
def test_seg_logits_match(pair):
    ref, ours = pair
    data = _batch(ref, seed=3)
    with torch.no_grad():
        metas = [s.metainfo for s in data['data_samples']]
        raw_ref = ref.inference(data['inputs'], copy.deepcopy(metas))
        raw_ours = ours.inference(data['inputs'], copy.deepcopy(metas))
        out_ref = ref.predict(data['inputs'], copy.deepcopy(data['data_samples']))
        out_ours = ours.predict(data['inputs'], copy.deepcopy(data['data_samples']))
    assert raw_ours.shape == (2, 4, 64, 64)  # padded input size
    torch.testing.assert_close(raw_ours, raw_ref, atol=1e-4, rtol=0)
    for a, b in zip(out_ref, out_ours):
        assert b.seg_logits.shape == (H, W)  # padding removed
        torch.testing.assert_close(b.seg_logits.data, a.seg_logits.data,
                                   atol=1e-4, rtol=0)
        assert torch.equal(a.pred_sem_seg.data, b.pred_sem_seg.data)


@pytest.mark.parametrize('case', ['plain', 'one_all_ignore_image'])
def test_losses_match_with_same_points(pair, case):
    ref, ours = pair
    data = _batch(ref, seed=5, training=True)
    if case == 'one_all_ignore_image':
        data['data_samples'][1].gt_sem_seg.data[:] = 255
    ref.train()
    ours.train()
    try:
        losses_ref, losses_ours = losses_with_same_points(
            ref, ours, data['inputs'], data['data_samples'])
    finally:
        ref.eval()
        ours.eval()
    assert set(losses_ours) == set(losses_ref)
    assert len(losses_ours) == 30 and 'decode.d8.loss_dice' in losses_ours
    for key, value in losses_ref.items():
        assert abs(losses_ours[key].item() - value.item()) <= 1e-4, \
            (key, losses_ours[key].item(), value.item())


# ------------------------------------------------------- inference modes
def test_slide_inference(pair):
    """Windows get logits of their own size (MMSeg's own head returns the
    whole padded size there and fails). Non-overlapping 32x32 windows equal
    whole inference on each window; overlapping ones are averaged."""
    _, ours = pair
    x = _batch(ours, seed=7)['inputs']  # 2×3×64×64
    try:
        with torch.no_grad():
            ours.test_cfg = ConfigDict(mode='slide', crop_size=(32, 32), stride=(32, 32))
            tiles = ours.predict(x)
            ours.test_cfg = ConfigDict(mode='slide', crop_size=(32, 32), stride=(16, 16))
            overlap = ours.predict(x)
            ours.test_cfg = ConfigDict(mode='whole')
            corner = ours.predict(x[:, :, 32:, :32].contiguous())
    finally:
        ours.test_cfg = ConfigDict(mode='whole')
    for t, c, o in zip(tiles, corner, overlap):
        assert t.seg_logits.shape == o.seg_logits.shape == (64, 64)
        torch.testing.assert_close(t.seg_logits.data[:, 32:, :32],
                                   c.seg_logits.data, atol=1e-5, rtol=0)
        assert torch.isfinite(o.seg_logits.data).all()


# ----------------------------------------------------------- checkpoints
def test_mmdet_panoptic_checkpoint_loads_into_mmseg_model(tmp_path):
    """The head trained in MMDet (``panoptic_head.``) is MMSeg's
    ``decode_head.``: same keys, same outputs."""
    from mmdet.registry import MODELS as DET_MODELS
    from mmengine.runner import load_checkpoint
    from m2f_mm.converters import convert_mmdet_state_dict
    from reference_models import ours_cfg
    torch.manual_seed(0)
    det = DET_MODELS.build(ours_cfg(num_things=3, num_stuff=2)).eval()
    det.init_weights()
    ckpt = tmp_path / 'panoptic.pth'
    torch.save({'state_dict': det.state_dict()}, ckpt)

    seg = _models().build(ours_seg_cfg(num_classes=5)).eval()
    sd = torch.load(ckpt, map_location='cpu')['state_dict']
    for converted in (convert_mmdet_state_dict(sd, head_prefix='decode_head.'),
                      {k.replace('panoptic_head.', 'decode_head.', 1): v
                       for k, v in sd.items()}):
        missing, unexpected = seg.load_state_dict(converted, strict=False)
        assert not missing and not unexpected, (missing, unexpected)
    torch.save({'state_dict': converted}, ckpt)
    load_checkpoint(seg, str(ckpt), map_location='cpu', strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        cls_det, mask_det = det.panoptic_head(det.extract_feat(x), None)
        cls_seg, mask_seg = seg.decode_head(seg.extract_feat(x))
    torch.testing.assert_close(cls_seg[-1], cls_det[-1])
    torch.testing.assert_close(mask_seg[-1], mask_det[-1])


# ------------------------------------------------- Runner, metric and TTA
COLORS = np.array([[20, 20, 20], [220, 40, 40], [40, 200, 60], [50, 70, 230]])


def _write_dataset(root, n=4, size=64, seed=0):
    """``n`` images of colored rectangles (classes 1..3) on class 0, with
    their label maps, as PNG files under img/ and ann/."""
    rng = np.random.RandomState(seed)
    os.makedirs(root / 'img', exist_ok=True)
    os.makedirs(root / 'ann', exist_ok=True)
    for i in range(n):
        label = np.zeros((size, size), np.uint8)
        for k in (1, 2, 3):
            y, x = rng.randint(0, size - 24, 2)
            hh, ww = rng.randint(12, 24, 2)
            label[y:y + hh, x:x + ww] = k
        img = COLORS[label] + rng.randint(-15, 16, (size, size, 3))
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(root / 'img' / f'{i}.png')
        Image.fromarray(label).save(root / 'ann' / f'{i}.png')


def _dataset(root, pipeline, indices=None):
    return dict(type='BaseSegDataset', data_root=str(root), indices=indices,
                data_prefix=dict(img_path='img', seg_map_path='ann'),
                img_suffix='.png', seg_map_suffix='.png', pipeline=pipeline,
                metainfo=dict(classes=('bg', 'red', 'green', 'blue'),
                              palette=COLORS.tolist()))


TRAIN_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                  dict(type='RandomFlip', prob=0.5), dict(type='PackSegInputs'),
                  dict(type='m2f_mm.BuildMaskTargets', num_classes=4)]
TEST_PIPELINE = [dict(type='LoadImageFromFile'),
                 dict(type='Resize', scale=(64, 64), keep_ratio=True),
                 dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
TTA_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale_factor=r, keep_ratio=True) for r in (0.75, 1.0)],
        [dict(type='RandomFlip', prob=p, direction='horizontal') for p in (0., 1.)],
        [dict(type='LoadAnnotations')], [dict(type='PackSegInputs')]])]


class _LossRecorder(Hook):
    def __init__(self):
        self.losses = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses.append(float(outputs['loss']))


def _runner_cfg(root, work_dir, model, **kwargs):
    loader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                  sampler=dict(type='DefaultSampler', shuffle=False),
                  dataset=_dataset(root, TEST_PIPELINE, indices=2))
    cfg = dict(model=model, work_dir=str(work_dir), default_scope='mmseg',
               log_level='WARNING', randomness=dict(seed=0),
               default_hooks=dict(
                   logger=dict(type='LoggerHook', interval=1000),
                   checkpoint=dict(type='CheckpointHook', interval=1000,
                                   by_epoch=False, save_last=False)),
               val_dataloader=loader, val_cfg=dict(type='ValLoop'),
               val_evaluator=dict(type='IoUMetric', iou_metrics=['mIoU']),
               test_dataloader=loader, test_cfg=dict(type='TestLoop'),
               test_evaluator=dict(type='IoUMetric', iou_metrics=['mIoU']))
    cfg.update(kwargs)
    return cfg


def test_runner_trains_and_evaluates(tmp_path):
    from mmengine.runner import Runner
    _write_dataset(tmp_path)
    recorder = _LossRecorder()
    model = ours_seg_cfg(num_classes=4, num_points=256, num_layers=3)
    cfg = _runner_cfg(
        tmp_path, tmp_path / 'work', model,
        train_dataloader=dict(batch_size=2, num_workers=0, persistent_workers=False,
                              sampler=dict(type='InfiniteSampler', shuffle=True),
                              dataset=_dataset(tmp_path, TRAIN_PIPELINE)),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=6, val_interval=1000),
        optim_wrapper=dict(type='OptimWrapper', optimizer=dict(
            type='AdamW', lr=1e-3, weight_decay=0.05)),
        custom_hooks=[recorder])
    runner = Runner(**cfg)
    runner.train()
    losses = recorder.losses
    assert len(losses) == 6 and all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < np.mean(losses[:2]), losses

    whole = runner.val()
    runner.model.test_cfg = ConfigDict(mode='slide', crop_size=(48, 48),
                                         stride=(32, 32))
    slide = runner.val()
    for metrics in (whole, slide):
        assert 0 <= metrics['mIoU'] <= 100 and 'aAcc' in metrics


def test_tta_multi_scale_flip(tmp_path):
    """MMSeg's ``--tta`` path: SegTTAModel around the model, TestTimeAug
    pipeline (2 scales x 2 flips), IoUMetric."""
    from mmengine.runner import Runner
    _write_dataset(tmp_path, n=2)
    model = ConfigDict(type='SegTTAModel',
                       module=ours_seg_cfg(num_classes=4, num_layers=3))
    cfg = _runner_cfg(tmp_path, tmp_path / 'work', model)
    cfg['test_dataloader'] = dict(cfg['test_dataloader'],
                                  dataset=_dataset(tmp_path, TTA_PIPELINE, indices=1))
    metrics = Runner(**cfg).test()
    assert 0 <= metrics['mIoU'] <= 100


# ----------------------------------------------------------- bad inputs
@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    m = _models().build(ours_seg_cfg(num_classes=4))
    m.init_weights()
    return m.train()


def _write_pair(root, label, img_size=(64, 64), name='x'):
    rng = np.random.RandomState(0)
    img = rng.randint(0, 256, img_size + (3,), dtype=np.uint8)
    img_path, seg_path = root / f'{name}.jpg', root / f'{name}_seg.png'
    Image.fromarray(img).save(img_path)
    Image.fromarray(label.astype(np.uint8)).save(seg_path)
    return str(img_path), str(seg_path)


def _train_step(model, root, label, targets_in_pipeline, img_size=(64, 64)):
    """One label map through MMSeg's loading/packing (+ BuildMaskTargets),
    the preprocessor and ``model.loss``; returns the total loss."""
    from mmcv.transforms import Compose
    img_path, seg_path = _write_pair(root, label, img_size)
    steps = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
             dict(type='PackSegInputs')]
    if targets_in_pipeline:
        steps.append(dict(type='m2f_mm.BuildMaskTargets', num_classes=4))
    packed = Compose(steps)(dict(img_path=img_path, seg_map_path=seg_path,
                                 reduce_zero_label=False, seg_fields=[]))
    data = model.data_preprocessor(dict(inputs=[packed['inputs']],
                                        data_samples=[packed['data_samples']]),
                                   True)
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(losses.values())
    assert torch.isfinite(total), losses
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters()
               if p.grad is not None)
    model.zero_grad()
    return losses


@pytest.mark.parametrize('in_pipeline', [False, True])
def test_all_ignore_label_map_trains(model, tmp_path, in_pipeline):
    losses = _train_step(model, tmp_path, np.full((64, 64), 255), in_pipeline)
    assert losses['decode.loss_mask'] == 0 and losses['decode.loss_cls'] > 0


@pytest.mark.parametrize('in_pipeline', [False, True])
def test_single_class_image_trains(model, tmp_path, in_pipeline):
    losses = _train_step(model, tmp_path, np.full((64, 64), 2), in_pipeline)
    assert losses['decode.loss_mask'] > 0


@pytest.mark.parametrize('in_pipeline', [False, True])
def test_label_out_of_range_names_value_and_file(model, tmp_path, in_pipeline):
    label = np.zeros((64, 64))
    label[10:20, 10:20] = 7
    with pytest.raises(ValueError) as err:
        _train_step(model, tmp_path, label, in_pipeline)
    msg = str(err.value)
    assert 'label 7 is outside [0, 4)' in msg and '\n' not in msg
    if in_pipeline:  # BuildMaskTargets names the image
        assert 'x_seg.png' in msg or 'x.jpg' in msg, msg
    else:
        assert 'x_seg.png' in msg, msg


@pytest.mark.parametrize('in_pipeline', [False, True])
@pytest.mark.parametrize('label_size', [(48, 64), (64, 80)])
def test_label_map_size_differs_from_image(model, tmp_path, in_pipeline, label_size):
    with pytest.raises(ValueError) as err:
        _train_step(model, tmp_path, np.zeros(label_size), in_pipeline)
    msg = str(err.value)
    assert 'x_seg.png' in msg and '{}x{}'.format(*label_size) in msg, msg
    assert '64x64' in msg and '\n' not in msg


# --------------------------------------------------------------- configs
@pytest.mark.parametrize('name, num_classes, crop, iters', [
    ('mask2former_r50_ade20k-semantic.py', 150, (512, 512), 160000),
    ('mask2former_r50_cityscapes-semantic.py', 19, (512, 1024), 90000)])
def test_semantic_configs_build(name, num_classes, crop, iters):
    from mmengine.config import Config
    from mmseg.registry import TRANSFORMS
    cfg = Config.fromfile(os.path.join(CONFIGS, name))
    assert cfg.default_scope == 'mmseg'  # the module fixture's scope
    model = _models().build(cfg.model)  # no init_weights: pretrained backbone
    head = model.decode_head
    assert type(head).__module__.startswith('m2f_mm')
    assert model.num_classes == model.out_channels == head.num_classes == num_classes
    assert head.num_queries == 100 and len(head.transformer_decoder.layers) == 9
    assert head.criterion.num_points == 12544 and head.criterion.class_weight[-1] == 0.1
    # the original's BN: frozen on ADE20K; trained and synchronised on Cityscapes
    cityscapes = 'cityscapes' in name
    assert model.backbone.norm_eval != cityscapes
    assert (cfg.model.backbone.norm_cfg.type == 'SyncBN') == cityscapes
    assert cfg.model.backbone.norm_cfg.requires_grad == cityscapes
    assert cfg.model.data_preprocessor.size == crop
    assert cfg.train_cfg.max_iters == iters and cfg.param_scheduler[0].end == iters
    assert cfg.param_scheduler[0].type == 'PolyLR' and cfg.param_scheduler[0].power == 0.9
    optim = cfg.optim_wrapper
    assert optim.optimizer.type == 'AdamW' and optim.optimizer.lr == 1e-4
    assert optim.optimizer.weight_decay == 0.05
    assert optim.paramwise_cfg.custom_keys.backbone.lr_mult == 0.1
    assert optim.clip_grad.max_norm == 0.01
    assert cfg.val_evaluator.type == 'IoUMetric'
    pipeline = cfg.train_dataloader.dataset.pipeline
    names = [t['type'] for t in pipeline]
    assert names[-2:] == ['PackSegInputs', 'm2f_mm.BuildMaskTargets']
    assert 'num_classes' not in pipeline[-1]  # it takes the head's (m2f_mm's runner)
    for t in pipeline + cfg.test_pipeline + cfg.tta_pipeline:
        TRANSFORMS.build(t)
