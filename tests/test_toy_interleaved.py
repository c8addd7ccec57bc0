"""The toy dataset with interleaved category ids (stuff between things, as
Cityscapes / ADE20K / Mapillary number theirs): ground truth given as the
prediction scores PQ 100 with things and stuff split by the file's isthing,
and the interleaved quickstart config trains and evaluates a few CPU
iterations with every metric in the file's category ids."""
import json
import os
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, 'configs/quickstart/mask2former_r18_toy-panoptic-interleaved.py')


@pytest.fixture(scope='module')
def toy_interleaved(tmp_path_factory):
    sys.path.insert(0, os.path.join(REPO, 'tools'))
    from make_toy_dataset import make_toy_dataset
    root = tmp_path_factory.mktemp('toy_interleaved')
    make_toy_dataset(str(root), num_train=4, num_val=3, size=64, seed=3, interleaved=True)
    return root


def test_files_interleave_things_and_stuff(toy_interleaved):
    from m2f_mm.datasets.toy import TOY_INTERLEAVED_PANOPTIC_METAINFO as META
    ann = json.load(open(toy_interleaved / 'annotations/panoptic_val.json'))
    flags = [c['isthing'] for c in ann['categories']]
    assert flags == [0, 1, 0, 1, 0, 1]  # in id order: stuff, thing, stuff, ...
    cfg = Config.fromfile(CONFIG)
    assert dict(cfg.metainfo) == {k: (list(v) if k == 'palette' else v)
                                  for k, v in META.items()}


@pytest.mark.parametrize('kind', ['m2f_mm.CocoPanopticMetric', 'm2f_mm.FastCocoPanopticMetric'])
def test_ground_truth_as_prediction_scores_100(toy_interleaved, kind):
    """Labels -> category ids through category_ids: a wrong map (the file's
    order) would score the stuff as things and most segments as misses."""
    from mmdet.registry import METRICS
    from mmengine.registry import init_default_scope
    import m2f_mm  # noqa: F401
    from m2f_mm.datasets.toy import TOY_INTERLEAVED_PANOPTIC_METAINFO as META
    init_default_scope('mmdet')
    root = toy_interleaved
    metric = METRICS.build(dict(
        type=kind, ann_file=str(root / 'annotations/panoptic_val.json'),
        seg_prefix=str(root / 'annotations/panoptic_val') + '/'))
    metric.dataset_meta = dict(META)
    label_of = {cat: label for label, cat in enumerate(META['category_ids'])}
    ann = json.load(open(root / 'annotations/panoptic_val.json'))
    samples = []
    for a in ann['annotations']:
        rgb = np.asarray(Image.open(root / 'annotations/panoptic_val' / a['file_name']),
                         np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        pan = np.full(ids.shape, len(META['classes']), np.int64)
        for k, seg in enumerate(a['segments_info']):
            label = label_of[seg['category_id']]
            thing = label < len(META['thing_classes'])
            pan[ids == seg['id']] = label + (k + 1) * 1000 * thing
        samples.append(dict(img_id=a['image_id'], img_path=str(root / 'val' / a['file_name']),
                            ori_shape=ids.shape,
                            pred_panoptic_seg=dict(sem_seg=torch.from_numpy(pan)[None])))
    metric.process({}, samples)
    out = metric.compute_metrics(metric.results)
    assert out['PQ'] == pytest.approx(100) and out['PQ_th'] == pytest.approx(100)
    assert out['PQ_st'] == pytest.approx(100)


def test_interleaved_config_trains_and_evaluates(toy_interleaved, tmp_path):
    from m2f_mm.utils.runner import build_runner
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = str(tmp_path)
    root = str(toy_interleaved) + '/'
    for loader in ('train_dataloader', 'test_dataloader'):
        cfg[loader].update(batch_size=2, num_workers=0, persistent_workers=False)
        cfg[loader].dataset.data_root = root
    cfg.model.test_cfg.object_mask_thr = 0.0  # a few iterations: keep every query
    for ev in cfg.test_evaluator:
        for key in ('ann_file', 'seg_prefix'):
            if key in ev:
                ev[key] = ev[key].replace('data/toy_interleaved/', root)
    cfg.train_cfg.update(max_iters=3, val_interval=100)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.param_scheduler = None
    cfg.default_hooks.checkpoint = None
    runner = build_runner(cfg)
    runner.train()
    metrics = runner.test()
    # the three things and three stuff classes, named by their file ids' names
    for name in ('circle', 'square', 'triangle', 'sky', 'grass', 'water'):
        assert f'coco_panoptic/PQ_{name}' in metrics
    assert {'coco_panoptic/PQ_th', 'coco_panoptic/PQ_st', 'coco/segm_mAP',
            'sem_seg/mIoU'} <= set(metrics)
