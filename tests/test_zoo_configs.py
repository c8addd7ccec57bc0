"""The Cityscapes / ADE20K / Mapillary Vistas configs: their metainfo is the
category tables' things-first order, and each R-50 config runs one training
and one test iteration (the head shrunk, images 64x96, crops 64x64) on data
in its own layout (tests/zoo_data.py), evaluating with its own metrics. The
R-101 and Swin configs, which differ from these in the backbone (and the
query count), run the same iteration, marked slow (a Swin-L is 200M
parameters); tests/test_datasets.py builds them in the default suite."""
import os
import re

import pytest
from mmengine.config import Config

import zoo_data
from m2f_mm.datasets.categories import INTERLEAVED, things_first_metainfo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('name', sorted(INTERLEAVED))
def test_config_metainfo_is_the_tables_things_first(name):
    base = name.replace('-', '_')  # cityscapes-panoptic -> cityscapes_panoptic.py
    cfg = Config.fromfile(os.path.join(REPO, 'configs/_base_/datasets', base + '.py'))
    meta = dict(cfg.metainfo)
    assert {k: tuple(v) for k, v in meta.items()} == things_first_metainfo(INTERLEAVED[name])


def _write(kind, root):
    for split in ('train', 'val'):
        if kind.endswith('panoptic'):
            zoo_data.write_panoptic(root, kind.split('-')[0], split)
        elif kind.endswith('instance'):
            zoo_data.write_instance(root, kind.split('-')[0], split)
        else:
            zoo_data.write_mapillary_semantic(root, split)


def _shrink(cfg, root, work_dir):
    """Small head, tiny crops, one iteration, the data under ``root``."""
    cfg.work_dir = str(work_dir)
    model = cfg.model
    model.backbone.init_cfg = None
    semantic = 'decode_head' in model
    head = model.decode_head if semantic else model.panoptic_head
    head.update(feat_channels=32, mask_channels=32, num_queries=8)
    head.pixel_decoder.update(num_layers=1, num_heads=4, ffn_dims=64,
                              norm_cfg=dict(type='GN', num_groups=8))
    head.transformer_decoder.update(num_layers=2, num_heads=4, ffn_dims=64)
    (head if semantic else model).train_cfg.num_points = 256
    if semantic:
        model.data_preprocessor.size = (64, 64)
    else:
        model.data_preprocessor.batch_augments[0].size = (64, 64)
    old_root = cfg.train_dataloader.dataset.data_root

    def small(pipeline):
        for t in pipeline:
            if t['type'] == 'RandomChoiceResize':
                t['scales'] = [64] if semantic else [(192, 64)]
            elif t['type'] == 'RandomCrop':
                t['crop_size'] = (64, 64)
            elif t['type'] == 'Resize':
                t['scale'] = (96, 64) if semantic else (192, 64)
    for loader in ('train_dataloader', 'test_dataloader'):
        dl = cfg[loader]
        dl.update(batch_size=2, num_workers=0, persistent_workers=False)
        dl.dataset.data_root = str(root) + '/'
        small(dl.dataset.pipeline)
    cfg.train_cfg.update(max_iters=1, val_interval=100)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.param_scheduler = None
    cfg.default_hooks.checkpoint = None
    evaluators = cfg.test_evaluator
    for ev in evaluators if isinstance(evaluators, list) else [evaluators]:
        for key in ('ann_file', 'seg_prefix'):
            if key in ev:
                ev[key] = re.sub('^' + re.escape(old_root), str(root) + '/', ev[key])
    return cfg


CONFIGS = ['cityscapes-panoptic', 'cityscapes-instance', 'ade20k-panoptic',
           'ade20k-instance', 'mapillary-panoptic', 'mapillary-semantic']


OTHER_BACKBONES = sorted(
    (name[len('mask2former_'):-len(f'_{kind}.py')], kind)
    for kind in CONFIGS for name in os.listdir(os.path.join(REPO, 'configs'))
    if name.endswith(f'_{kind}.py') and not name.startswith('mask2former_r50_'))


@pytest.mark.parametrize('kind', CONFIGS)
def test_r50_config_trains_and_tests_one_iteration(kind, tmp_path):
    _train_and_test('r50', kind, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize('backbone,kind', OTHER_BACKBONES)
def test_other_backbone_configs_train_and_test_one_iteration(backbone, kind, tmp_path):
    _train_and_test(backbone, kind, tmp_path)


def test_every_zoo_config_is_run_by_a_test():
    assert len(OTHER_BACKBONES) == 14  # R-101, Swin-T/S/B/L (see the README)


def _train_and_test(backbone, kind, tmp_path):
    from m2f_mm.utils.runner import build_runner
    root = tmp_path / 'data'
    _write(kind, str(root))
    cfg = Config.fromfile(os.path.join(REPO, f'configs/mask2former_{backbone}_{kind}.py'))
    cfg = _shrink(cfg, root, tmp_path / 'work')
    runner = build_runner(cfg)
    runner.train()
    metrics = runner.test()
    if kind.endswith('panoptic'):
        # the split of PQ follows the file's isthing, through category_ids
        assert 'coco_panoptic/PQ_th' in metrics and 'coco_panoptic/PQ_st' in metrics
    elif kind.endswith('instance'):
        assert 'coco/segm_mAP' in metrics
    else:
        assert 'mIoU' in metrics


@pytest.mark.parametrize('kind', CONFIGS + ['cityscapes-semantic'])
def test_resnet_norm_is_the_originals(kind):
    """The original trains the ResNet's BN on Cityscapes, synchronised
    (RESNETS.NORM "SyncBN"), and keeps it frozen on ADE20K and Mapillary
    Vistas (detectron2's FrozenBN); the R-101 configs inherit it."""
    for depth in ('r50', 'r101'):
        path = os.path.join(REPO, f'configs/mask2former_{depth}_{kind}.py')
        if not os.path.exists(path):
            continue
        backbone = Config.fromfile(path).model.backbone
        cityscapes = kind.startswith('cityscapes')
        assert backbone.norm_cfg == dict(type='SyncBN' if cityscapes else 'BN',
                                         requires_grad=cityscapes), path
        assert backbone.norm_eval == (not cityscapes), path
