"""The fast metrics on the zoo datasets' layouts (tests/zoo_data.py):
interleaved category ids mapped through the metainfo's ``category_ids``,
cityscapesscripts' string image ids, ground-truth PNGs named unlike their
images (``seg_map_path``). On predictions made from the ground truth
(shifted, some labels swapped) they give the slow metrics' numbers, per
class included, and the slow panoptic metric no longer writes VOID into
the predictions that the metrics after it read."""
import json
import os

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

import zoo_data

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG = dict(cityscapes=('gtFine/cityscapes_panoptic_val.json', 'gtFine/cityscapes_panoptic_val'),
           ade20k=('ade20k_panoptic_val.json', 'ade20k_panoptic_val'),
           mapillary=('validation/panoptic/panoptic_2018.json', 'validation/panoptic'))


def _build(cfg_entry, root, data_root, meta, **extra):
    from mmdet.registry import METRICS
    from mmengine.registry import init_default_scope

    import m2f_mm  # noqa: F401  (registers the metrics)
    init_default_scope('mmdet')
    entry = {k: v.replace(data_root, str(root) + '/') if isinstance(v, str) else v
             for k, v in dict(cfg_entry, **extra).items()}
    metric = METRICS.build(entry)
    metric.dataset_meta = dict(meta)
    return metric


def _assert_same(ref, ours):
    assert sorted(ref) == sorted(ours)
    for key in ref:
        if ref[key] != ref[key]:  # NaN: a class without GT or prediction
            assert ours[key] != ours[key], key
        else:
            assert abs(ref[key] - ours[key]) <= 1e-9, (key, ref[key], ours[key])


def _slow_equals_fast(slow_type, cfg, root, meta, samples):
    """The slow metric, then the fast one (``Fast`` + its name), on the same
    samples with classwise results: equal to 1e-9. Returns the fast one's."""
    results = []
    for kind in (slow_type, slow_type.replace('m2f_mm.', 'm2f_mm.Fast')):
        metric = _build(cfg.val_evaluator, root, cfg.data_root, meta, type=kind,
                        classwise=True)
        metric.process({}, samples)
        results.append(metric.evaluate(len(samples)))
    _assert_same(*results)
    return results[1]


def _panoptic_samples(root, layout, meta):
    """Predictions from the GT, shifted 3 px, a third of the things given
    another thing's label, one stuff region relabelled."""
    ann_file, png_dir = PNG[layout]
    with open(os.path.join(root, ann_file)) as f:
        ann = json.load(f)
    label_of = {cat: i for i, cat in enumerate(meta['category_ids'])}
    n_things, n_classes = len(meta['thing_classes']), len(meta['classes'])
    rng = np.random.RandomState(0)
    samples = []
    for img, a in zip(ann['images'], ann['annotations']):
        rgb = np.asarray(Image.open(os.path.join(root, png_dir, a['file_name'])), np.int64)
        ids = np.roll(rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2], 3, 1)
        pan = np.full(ids.shape, n_classes, np.int64)  # VOID
        for k, seg in enumerate(a['segments_info']):
            label = label_of[seg['category_id']]
            if label < n_things and rng.rand() < 0.34:
                label = rng.randint(n_things)
            elif label >= n_things and k == 0 and len(samples) % 2:
                label = n_things + rng.randint(n_classes - n_things)
            pan[ids == seg['id']] = label + (k + 1) * 1000 * (label < n_things)
        samples.append(dict(
            img_id=img['id'], img_path=os.path.join(root, 'images', img['file_name']),
            seg_map_path=os.path.join(root, png_dir, a['file_name']), ori_shape=ids.shape,
            pred_panoptic_seg=dict(sem_seg=torch.from_numpy(pan)[None])))
    return samples


@pytest.mark.parametrize('layout', ['cityscapes', 'ade20k', 'mapillary'])
def test_panoptic_fast_equals_slow_on_zoo_layouts(layout, tmp_path):
    zoo_data.write_panoptic(str(tmp_path), layout, 'val', n=6)
    cfg = Config.fromfile(os.path.join(REPO, f'configs/_base_/datasets/{layout}_panoptic.py'))
    assert cfg.val_evaluator['type'] == 'm2f_mm.FastCocoPanopticMetric'
    meta = dict(cfg.metainfo)
    samples = _panoptic_samples(str(tmp_path), layout, meta)
    if layout == 'cityscapes':
        assert isinstance(samples[0]['img_id'], str)  # cityscapesscripts' ids
    # the slow one first, on the very samples the fast one reads after it
    fast = _slow_equals_fast('m2f_mm.CocoPanopticMetric', cfg, tmp_path, meta, samples)
    assert 0 < fast['coco_panoptic/PQ_th'] < 100 and 0 < fast['coco_panoptic/PQ_st'] < 100
    # a category named by the dataset's own table (an interleaved id)
    thing_name = meta['thing_classes'][0]
    assert f'coco_panoptic/PQ_{thing_name}' in fast


def _instance_samples(root, ann_file, meta):
    from pycocotools import mask as mask_utils
    with open(os.path.join(root, ann_file)) as f:
        ann = json.load(f)
    ids = meta.get('category_ids')
    if ids is None:  # the file's categories, by name (MMDet's mapping)
        by_name = {c['name']: c['id'] for c in ann['categories']}
        ids = [by_name[name] for name in meta['classes']]
    label_of = {cat: i for i, cat in enumerate(ids)}
    rng = np.random.RandomState(1)
    samples = []
    for img in ann['images']:
        masks, labels = [], []
        for a in ann['annotations']:
            if a['image_id'] != img['id']:
                continue
            m = np.roll(mask_utils.decode(a['segmentation']).astype(bool), 2, 0)
            label = label_of[a['category_id']]
            if rng.rand() < 0.3:
                label = rng.randint(len(meta['classes']))
            masks += [m, np.roll(m, 9, 1)]  # a good and a poor detection
            labels += [label, label]
        samples.append(dict(
            img_id=img['id'], ori_shape=(img['height'], img['width']),
            pred_instances=dict(masks=torch.from_numpy(np.stack(masks)),
                                labels=torch.tensor(labels),
                                scores=torch.from_numpy(rng.rand(len(labels))),
                                bboxes=torch.zeros(len(labels), 4))))
    return samples


@pytest.mark.parametrize('layout', ['cityscapes', 'ade20k', 'string-ids'])
def test_mask_ap_fast_equals_slow_on_zoo_layouts(layout, tmp_path):
    dataset = 'ade20k' if layout == 'ade20k' else 'cityscapes'
    zoo_data.write_instance(str(tmp_path), dataset, 'val', n=6)
    cfg = Config.fromfile(os.path.join(REPO, f'configs/_base_/datasets/{dataset}_instance.py'))
    assert cfg.val_evaluator['type'] == 'm2f_mm.FastCocoMetric'
    ann_file = cfg.val_evaluator['ann_file'].replace(cfg.data_root, '')
    if layout == 'string-ids':  # hotcoco takes integer ids only
        path = os.path.join(tmp_path, ann_file)
        with open(path) as f:
            ann = json.load(f)
        for im in ann['images']:
            im['id'] = f'frankfurt_{im["id"]:06d}'
        for a in ann['annotations']:
            a['image_id'] = f'frankfurt_{a["image_id"]:06d}'
        with open(path, 'w') as f:
            json.dump(ann, f)
    meta = dict(cfg.metainfo)
    samples = _instance_samples(str(tmp_path), ann_file, meta)
    fast = _slow_equals_fast('m2f_mm.CocoMetric', cfg, tmp_path, meta, samples)
    assert 0 < fast['coco/segm_mAP'] < 1
