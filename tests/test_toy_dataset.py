"""Tests of the generated toy-shapes dataset (tools/make_toy_dataset.py)."""
import hashlib
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from m2f_mm.datasets.toy import (TOY_CLASSES, TOY_INSTANCE_METAINFO,
                                 TOY_PANOPTIC_METAINFO, TOY_SEMSEG_METAINFO,
                                 TOY_STUFF_CLASSES, TOY_THING_CLASSES)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
_spec = importlib.util.spec_from_file_location(
    'make_toy_dataset', osp.join(REPO, 'tools', 'make_toy_dataset.py'))
mtd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mtd)

SMALL = dict(num_train=6, num_val=3, size=64, seed=3)


def _tree_hashes(root):
    """{relative path: sha1} of every file under ``root``."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = osp.join(d, f)
            with open(p, 'rb') as fh:
                out[osp.relpath(p, root)] = hashlib.sha1(fh.read()).hexdigest()
    return out


def _read_png(path):
    return np.array(Image.open(path))


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('toy') / 'toy')
    mtd.make_toy_dataset(root, **SMALL)
    return root


def test_metainfo():
    assert TOY_CLASSES == ('circle', 'square', 'triangle', 'sky', 'grass',
                           'water')
    assert TOY_PANOPTIC_METAINFO['classes'] == TOY_THING_CLASSES + \
        TOY_STUFF_CLASSES
    assert len(TOY_PANOPTIC_METAINFO['palette']) == len(TOY_CLASSES)
    assert TOY_INSTANCE_METAINFO['classes'] == TOY_THING_CLASSES
    assert TOY_SEMSEG_METAINFO['classes'] == TOY_CLASSES


def test_layout_and_determinism(tmp_path, toy_root):
    a = _tree_hashes(toy_root)
    names = [f'{i:06d}.png' for i in range(1, 7)]
    for sub in ('train', 'semantic/train', 'annotations/panoptic_train'):
        assert sorted(osp.relpath(k, sub) for k in a
                      if osp.dirname(k) == sub) == names
    for f in ('panoptic_train.json', 'panoptic_val.json',
              'instances_train.json', 'instances_val.json'):
        assert osp.join('annotations', f) in a
    # same args -> byte-identical; another seed -> different images
    mtd.make_toy_dataset(str(tmp_path / 'b'), **SMALL)
    assert _tree_hashes(str(tmp_path / 'b')) == a
    mtd.make_toy_dataset(str(tmp_path / 'c'), **dict(SMALL, seed=4))
    c = _tree_hashes(str(tmp_path / 'c'))
    assert c['train/000001.png'] != a['train/000001.png']
    # images do not depend on the split sizes
    mtd.make_toy_dataset(str(tmp_path / 'd'), **dict(SMALL, num_train=2))
    d = _tree_hashes(str(tmp_path / 'd'))
    assert d['train/000002.png'] == a['train/000002.png']
    assert d['val/000003.png'] == a['val/000003.png']


def test_noop_force_and_foreign_dir(tmp_path):
    root = str(tmp_path / 'toy')
    args = dict(num_train=2, num_val=1, size=48, seed=0)
    mtd.make_toy_dataset(root, **args)
    assert mtd.toy_dataset_is_current(root, **args)
    marker = osp.join(root, 'marker')
    open(marker, 'w').close()
    mtd.make_toy_dataset(root, **args)  # up to date: untouched
    assert osp.exists(marker)
    mtd.make_toy_dataset(root, **args, force=True)
    assert not osp.exists(marker)
    open(marker, 'w').close()
    mtd.make_toy_dataset(root, **dict(args, num_val=2))  # other args: redo
    assert not osp.exists(marker)
    assert len(os.listdir(osp.join(root, 'val'))) == 2
    assert sorted(os.listdir(tmp_path)) == ['toy']  # no temp dirs left
    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'keep.txt').write_text('x')
    with pytest.raises(FileExistsError):
        mtd.make_toy_dataset(str(foreign), **args)
    assert (foreign / 'keep.txt').exists()


def test_max_things(tmp_path):
    root = str(tmp_path / 'one')
    mtd.make_toy_dataset(root, **dict(SMALL, max_things=1))
    with open(osp.join(root, 'annotations', 'instances_train.json')) as f:
        ins = json.load(f)
    assert len(ins['annotations']) == SMALL['num_train']  # one thing each
    with open(osp.join(root, 'meta.json')) as f:
        assert json.load(f)['args']['max_things'] == 1
    assert not mtd.toy_dataset_is_current(root, **SMALL)  # other max_things
    with pytest.raises(ValueError, match='max_things'):
        mtd.make_toy_dataset(str(tmp_path / 'none'), **dict(SMALL, max_things=0))


def test_things_stay_mostly_visible(monkeypatch):
    """Every placed thing keeps MIN_VISIBLE of its own area: occlusion never
    hides enough of a shape to make its class a guess."""
    drawn = []

    def recording_shape_mask(*args):
        mask = shape_mask(*args)
        drawn.append(mask)
        return mask

    shape_mask = mtd._shape_mask
    monkeypatch.setattr(mtd, '_shape_mask', recording_shape_mask)
    checked = 0
    for seed in range(30):
        drawn.clear()
        inst, classes = mtd._place_things(128, 8, np.random.default_rng(seed))
        for i in range(len(classes)):
            visible = inst == i
            # the shape drawn for thing i contains all its visible pixels
            full = [m for m in drawn if m[visible].all()]
            assert full and visible.sum() >= mtd.MIN_VISIBLE * min(
                int(m.sum()) for m in full)
            checked += 1
    assert checked > 60  # several things per image were placed


def test_cli(tmp_path, capsys):
    out = str(tmp_path / 'toy')
    argv = ['--out', out, '--num-train', '1', '--num-val', '1', '--size', '40']
    mtd.main(argv)
    assert 'wrote' in capsys.readouterr().out
    mtd.main(argv)
    assert 'already' in capsys.readouterr().out


@pytest.mark.parametrize('split', ['train', 'val'])
def test_annotations_agree(toy_root, split):
    from pycocotools import mask as mask_utils
    ann = osp.join(toy_root, 'annotations')
    with open(osp.join(ann, f'panoptic_{split}.json')) as f:
        pan = json.load(f)
    with open(osp.join(ann, f'instances_{split}.json')) as f:
        ins = json.load(f)
    cats = {c['id']: c for c in pan['categories']}
    assert [cats[i]['name'] for i in sorted(cats)] == list(TOY_CLASSES)
    assert [c['isthing'] for c in pan['categories']] == [1] * 3 + [0] * 3
    assert [c['name'] for c in ins['categories']] == list(TOY_THING_CLASSES)
    assert pan['images'] == ins['images']
    ins_by_img = {}
    for a in ins['annotations']:
        ins_by_img.setdefault(a['image_id'], []).append(a)
    for img, p in zip(pan['images'], pan['annotations']):
        assert p['image_id'] == img['id'] and p['file_name'] == \
            img['file_name']
        rgb = _read_png(osp.join(ann, f'panoptic_{split}', p['file_name']))
        rgb = rgb.astype(np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        sem = _read_png(osp.join(toy_root, 'semantic', split, p['file_name']))
        im = _read_png(osp.join(toy_root, split, p['file_name']))
        assert im.shape == (img['height'], img['width'], 3)
        assert sem.dtype == np.uint8 and sem.shape == ids.shape
        segs = p['segments_info']
        # the segments tile the image: no unlabelled pixel
        assert sorted(np.unique(ids).tolist()) == sorted(s['id'] for s in segs)
        expected_sem = np.full(ids.shape, 255, np.int64)
        thing_masks = []
        for s in segs:
            m = ids == s['id']
            ys, xs = np.nonzero(m)
            assert s['area'] == m.sum() and s['iscrowd'] == 0
            assert s['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                 ys.max() - ys.min() + 1]
            expected_sem[m] = s['category_id'] - 1  # ids 1..6 -> 0..5
            if cats[s['category_id']]['isthing']:
                assert s['area'] >= mtd.MIN_AREA
                thing_masks.append((s, m))
        np.testing.assert_array_equal(sem, expected_sem)
        assert sem.max() <= 5
        n_stuff = len(segs) - len(thing_masks)
        assert 1 <= len(thing_masks) <= mtd.MAX_THINGS and 1 <= n_stuff <= 3
        # instance json: one annotation per thing segment, same mask
        insts = ins_by_img[img['id']]
        assert len(insts) == len(thing_masks)
        for a, (s, m) in zip(insts, thing_masks):
            assert a['category_id'] == s['category_id']
            assert a['bbox'] == s['bbox'] and a['area'] == s['area']
            np.testing.assert_array_equal(
                mask_utils.decode(a['segmentation']).astype(bool), m)


def _det_pipeline(load):
    return [dict(type='LoadImageFromFile'), load, dict(type='PackDetInputs')]


def test_loads_with_mmdet_panoptic(toy_root):
    pytest.importorskip('mmcv')
    from mmdet.datasets import CocoPanopticDataset
    from mmdet.utils import register_all_modules
    register_all_modules()
    ds = CocoPanopticDataset(
        data_root=toy_root,
        ann_file='annotations/panoptic_train.json',
        data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
        metainfo=TOY_PANOPTIC_METAINFO,
        pipeline=_det_pipeline(
            dict(type='LoadPanopticAnnotations', with_bbox=True,
                 with_mask=True, with_seg=True)))
    assert len(ds) == SMALL['num_train']
    assert ds.metainfo['classes'] == TOY_CLASSES
    assert ds.cat_ids == [1, 2, 3, 4, 5, 6]
    with open(osp.join(toy_root, 'annotations', 'panoptic_train.json')) as f:
        pan = json.load(f)
    for i in range(3):
        sample = ds[i]['data_samples']
        gt = sample.gt_instances
        segs = pan['annotations'][i]['segments_info']
        things = [s for s in segs if s['category_id'] <= 3]
        assert gt.labels.tolist() == [s['category_id'] - 1 for s in things]
        assert (gt.masks.areas > 0).all()
        assert gt.masks.areas.tolist() == [s['area'] for s in things]
        # mmdet paints things with their thing label (0..2) and stuff with
        # num_things + stuff index (3..5): same as our semantic maps
        sem = sample.gt_sem_seg.sem_seg[0].numpy()
        ref = _read_png(osp.join(toy_root, 'semantic', 'train',
                                 pan['annotations'][i]['file_name']))
        np.testing.assert_array_equal(sem, ref)


def test_loads_with_mmdet_instances(toy_root):
    pytest.importorskip('mmcv')
    from mmdet.datasets import CocoDataset
    from mmdet.utils import register_all_modules
    register_all_modules()
    ds = CocoDataset(
        data_root=toy_root,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        metainfo=TOY_INSTANCE_METAINFO,
        pipeline=_det_pipeline(
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True)))
    assert len(ds) == SMALL['num_val']
    assert ds.cat_ids == [1, 2, 3]
    with open(osp.join(toy_root, 'annotations', 'instances_val.json')) as f:
        ins = json.load(f)
    for i in range(len(ds)):
        gt = ds[i]['data_samples'].gt_instances
        anns = [a for a in ins['annotations'] if a['image_id'] == i + 1]
        assert gt.labels.tolist() == [a['category_id'] - 1 for a in anns]
        assert gt.masks.areas.tolist() == [a['area'] for a in anns]
        x, y, w, h = anns[0]['bbox']
        assert gt.bboxes.tensor[0].tolist() == [x, y, x + w, y + h]


def test_loads_with_mmseg(toy_root):
    pytest.importorskip('mmcv')
    import mmseg.datasets  # noqa: F401  (registers mmseg's transforms)
    from mmengine.registry import DefaultScope
    from mmseg.datasets import BaseSegDataset
    with DefaultScope.overwrite_default_scope('mmseg'):
        ds = BaseSegDataset(
            data_root=toy_root,
            img_suffix='.png',
            seg_map_suffix='.png',
            data_prefix=dict(img_path='train', seg_map_path='semantic/train'),
            metainfo=TOY_SEMSEG_METAINFO,
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations'),
                dict(type='PackSegInputs')
            ])
        samples = [ds[i] for i in range(3)]
    assert len(ds) == SMALL['num_train']
    assert ds.metainfo['classes'] == TOY_CLASSES
    assert ds.label_map is None  # classes match: no remapping
    assert type(ds.pipeline.transforms[1]).__module__.startswith('mmseg.')
    for i, s in enumerate(samples):
        sem = s['data_samples'].gt_sem_seg.data[0].numpy()
        assert set(np.unique(sem).tolist()) <= set(range(6)) | {255}
        ref = _read_png(osp.join(toy_root, 'semantic', 'train',
                                 f'{i + 1:06d}.png'))
        np.testing.assert_array_equal(sem, ref)
        assert s['inputs'].shape == (3, SMALL['size'], SMALL['size'])
