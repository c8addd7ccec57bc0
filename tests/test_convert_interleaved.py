"""Checkpoints whose classes interleave things and stuff (the paper's
Cityscapes, ADE20K and Mapillary Vistas panoptic models): converted, our
model gives the original's panoptic segments in the same dataset category
ids.

The original's outputs for an interleaved classifier follow from the d2
fixtures (``shared/fixtures/d2``, written by the original code): a class
row that copies row r of the fixture's classifier, with its bias moved by d,
has the logits of class r plus d (and a row scaled by k, k times them). So a 19-class Cityscapes-order model is
built from the fixture's 5 classes, and its original class logits are the
fixture's columns rearranged; the original's panoptic inference
(``MaskFormer.panoptic_inference``, restated below) runs on those.
"""
import os
import pickle

import numpy as np
import pytest
import torch

from m2f_mm.converters import load_d2_pickle
from m2f_mm.datasets.categories import CITYSCAPES_CATEGORIES, things_first_metainfo
from m2f_mm.models.heads.fusion import INSTANCE_OFFSET, panoptic_fusion

from test_convert_d2 import FIXTURES, REPO, build_from_config, fixture, run_tool

pytestmark = pytest.mark.skipif(not os.path.isdir(FIXTURES),
                                reason=f'd2 fixtures not found at {FIXTURES}')
OBJECT_THR, OVERLAP_THR = 0.3, 0.1
# the fixture's random class logits are nearly flat (spread < 1): every
# row is scaled by SCALE (logits scale with it) so that queries pass
# OBJECT_THR; the fixture's masks overlap, hence the low OVERLAP_THR
SCALE = 10.0
NO_OBJECT_SHIFT = -8.0  # the fixture's queries all say no-object otherwise
# per fixture class, chosen so that the original's fusion keeps two things
# (one class) and one stuff segment
CLASS_SHIFT = (-2.0, -2.0, 2.0, 0.0, -2.0)
NEVER = -30.0  # a bias shift that keeps a copied row from ever winning


def _cityscapes_rows():
    """For each of the 19 Cityscapes classes (train-id order, stuff 0..10,
    things 11..18): (fixture row it copies, bias shift). The fixture's
    things 0..2 become person, rider, car; its stuff 3, 4 road and sky."""
    rows = [(3, NEVER)] * 19
    rows[0], rows[10] = (3, CLASS_SHIFT[3]), (4, CLASS_SHIFT[4])  # road, sky
    for i, r in zip((11, 12, 13), (0, 1, 2)):
        rows[i] = (r, CLASS_SHIFT[r])
    for i in range(14, 19):
        rows[i] = (i % 3, NEVER)
    return rows


def _interleaved_pkl(path, rows):
    raw = load_d2_pickle(fixture('r50_tiny.pkl'))['model']
    w, b = raw['sem_seg_head.predictor.class_embed.weight'], \
        raw['sem_seg_head.predictor.class_embed.bias']
    no_obj = len(w) - 1
    idx = [r for r, _ in rows] + [no_obj]
    shift = np.asarray([d for _, d in rows] + [NO_OBJECT_SHIFT], np.float32)
    raw['sem_seg_head.predictor.class_embed.weight'] = SCALE * w[idx]
    raw['sem_seg_head.predictor.class_embed.bias'] = SCALE * b[idx] + shift
    weight = np.ones(len(rows) + 1, np.float32)
    weight[-1] = 0.1
    raw['criterion.empty_weight'] = weight
    with open(path, 'wb') as f:
        pickle.dump({'model': raw}, f)
    return idx, shift


def original_panoptic(mask_cls, mask_pred, thing_classes, num_classes):
    """facebookresearch/Mask2Former's panoptic_inference (semantics restated):
    segments as (contiguous class, pixel mask), stuff merged per class."""
    scores, labels = mask_cls.softmax(-1).max(-1)
    keep = (labels != num_classes) & (scores > OBJECT_THR)
    probs = mask_pred[keep].sigmoid()
    classes = labels[keep].tolist()
    if not classes:
        return []
    ids = (scores[keep].view(-1, 1, 1) * probs).argmax(0)
    segments, stuff = [], {}
    for k, cls in enumerate(classes):
        won, own = (ids == k), probs[k] >= 0.5
        mask = won & own
        if not (won.sum() > 0 and own.sum() > 0 and mask.sum() > 0):
            continue
        if won.sum().item() / own.sum().item() < OVERLAP_THR:
            continue
        if cls not in thing_classes:
            if cls in stuff:
                stuff[cls][1] |= mask
                continue
            stuff[cls] = [cls, mask.clone()]
            segments.append(stuff[cls])
        else:
            segments.append([cls, mask.clone()])
    return [(c, m) for c, m in segments]


def _canonical(segments):
    return sorted((cat, tuple(np.flatnonzero(m.numpy()))) for cat, m in segments
                  if m.any())


def _ours_segments(pan, category_ids, num_classes):
    out = []
    for value in torch.unique(pan).tolist():
        label = value % INSTANCE_OFFSET
        if label == num_classes:
            continue
        out.append((category_ids[label], pan == value))
    return out


def test_cityscapes_order_converts_to_the_same_segments(tmp_path):
    rows = _cityscapes_rows()
    idx, shift = _interleaved_pkl(tmp_path / 'cs.pkl', rows)
    dst, cfg_path = tmp_path / 'cs.pth', tmp_path / 'cs.py'
    err, _ = run_tool('d2', tmp_path / 'cs.pkl', dst, '--config-out', cfg_path,
                      '--dataset', 'cityscapes-panoptic')
    assert err is None, err
    from mmengine.runner import load_checkpoint
    cfg, model = build_from_config(cfg_path)
    load_checkpoint(model, str(dst), map_location='cpu', strict=True)
    model.eval()
    meta = cfg.test_dataloader.dataset.metainfo
    expected = things_first_metainfo(CITYSCAPES_CATEGORIES)
    assert tuple(meta['category_ids']) == expected['category_ids']
    assert (cfg.model.panoptic_head.num_things_classes,
            cfg.model.panoptic_head.num_stuff_classes) == (8, 11)
    order = cfg.class_order
    assert order == list(range(11, 19)) + list(range(11))

    io = np.load(fixture('tiny_io.npz'))
    ref_cls = torch.from_numpy(SCALE * io['r50_tiny_logits'][:, :, :, idx] + shift)  # original's
    ref_masks = torch.from_numpy(io['r50_tiny_masks'])
    with torch.no_grad():
        cls, masks = model.panoptic_head(model.backbone(torch.from_numpy(io['input'])), None)
    for s in range(10):  # ours = the original's classes, things first
        moved = ref_cls[s][..., order + [19]]
        assert (cls[s] - moved).abs().max() <= 1e-3  # logits x SCALE
        assert (masks[s] - ref_masks[s]).abs().max() <= 1e-4

    things = set(range(11, 19))
    ref = original_panoptic(ref_cls[-1][0], ref_masks[-1][0], things, 19)
    ref = [(CITYSCAPES_CATEGORIES[c][0], m) for c, m in ref]
    pan = panoptic_fusion(cls[-1][0], masks[-1][0], 19, 8, OBJECT_THR, OVERLAP_THR,
                          filter_low_score=True)
    ours = _ours_segments(pan, meta['category_ids'], 19)
    cats = {c for c, _ in ref}
    # the case is worth checking: things and stuff both present
    assert cats & {24, 25, 26} and cats & {7, 23}, cats
    assert _canonical(ours) == _canonical(ref)
    # things are instances (label + id * offset), stuff a bare label
    for value in torch.unique(pan).tolist():
        label = value % INSTANCE_OFFSET
        assert (value >= INSTANCE_OFFSET) == (label < 8) or label == 19


def test_thing_ids_reorder_any_checkpoint(tmp_path):
    """--thing-ids: the fixture's classes interleaved as stuff, thing,
    stuff, thing, thing; converted with the things named, the model's
    logits are the original's in things-first order."""
    rows = [(3, 0.0), (0, 0.0), (4, 0.0), (1, 0.0), (2, 0.0)]
    idx, shift = _interleaved_pkl(tmp_path / 'x.pkl', rows)
    dst, cfg_path = tmp_path / 'x.pth', tmp_path / 'x.py'
    err, _ = run_tool('d2', tmp_path / 'x.pkl', dst, '--config-out', cfg_path,
                      '--dataset', 'coco-panoptic', '--thing-ids', '1,3,4')
    assert err is None, err
    from mmengine.runner import load_checkpoint
    cfg, model = build_from_config(cfg_path)
    load_checkpoint(model, str(dst), map_location='cpu', strict=True)
    model.eval()
    assert cfg.class_order == [1, 3, 4, 0, 2]
    assert (cfg.model.panoptic_head.num_things_classes,
            cfg.model.panoptic_head.num_stuff_classes) == (3, 2)
    io = np.load(fixture('tiny_io.npz'))
    ref_cls = torch.from_numpy(SCALE * io['r50_tiny_logits'][:, :, :, idx] + shift)
    with torch.no_grad():
        cls, _ = model.panoptic_head(model.backbone(torch.from_numpy(io['input'])), None)
    assert (cls[-1] - ref_cls[-1][..., [1, 3, 4, 0, 2, 5]]).abs().max() <= 1e-3
    # and so the fixture's own things-first logits again
    fixture_order = SCALE * torch.from_numpy(io['r50_tiny_logits'][-1])
    fixture_order[..., -1] += NO_OBJECT_SHIFT
    assert (cls[-1] - fixture_order).abs().max() <= 1e-3


def test_thing_ids_out_of_range_is_one_line(tmp_path):
    err, _ = run_tool('d2', fixture('r50_tiny.pkl'), tmp_path / 'o.pth',
                      '--dataset', 'coco-panoptic', '--thing-ids', '1,9')
    assert err is not None and '\n' not in err and '--thing-ids [9]' in err


@pytest.mark.parametrize('keys_json,dataset,classes,config', [
    ('keys_r50_coco_panoptic.json', 'cityscapes-panoptic', 19,
     'mask2former_r50_cityscapes-panoptic.py'),
    ('keys_swinl_coco_panoptic.json', 'ade20k-panoptic', 150,
     'mask2former_swin-l_ade20k-panoptic.py'),
    ('keys_swinl_coco_panoptic.json', 'mapillary-panoptic', 65,
     'mask2former_swin-l_mapillary-panoptic.py'),
    ('keys_swinl_coco_panoptic.json', 'cityscapes-instance', 8,
     'mask2former_swin-l_cityscapes-instance.py'),
    ('keys_r50_coco_panoptic.json', 'ade20k-instance', 100,
     'mask2former_r50_ade20k-instance.py'),
    ('keys_r50_coco_panoptic.json', 'mapillary-semantic', 65,
     'mask2former_r50_mapillary-semantic.py'),
])
def test_full_size_layouts_of_the_other_datasets(keys_json, dataset, classes, config):
    """The official layouts (R-50, Swin-L with 200 queries) with these
    datasets' class counts: the written config builds exactly our repository
    config's model, and every converted key fits it."""
    import json
    from mmengine.config import Config
    from m2f_mm.converters.arch import (build_config, class_order, head_prefix,
                                        model_state_shapes, resolve_dataset)
    from m2f_mm.converters.class_order import reorder_classes
    from m2f_mm.converters.common import check_against
    from m2f_mm.converters.d2 import convert_d2_state_dict, d2_architecture
    shapes = json.load(open(fixture(keys_json)))
    state = {k: torch.empty(v, device='meta', dtype=torch.long if
                            k.endswith('relative_position_index') else torch.float32)
             for k, v in shapes.items()}
    hidden = state['sem_seg_head.predictor.class_embed.weight'].shape[1]
    state['sem_seg_head.predictor.class_embed.weight'] = torch.empty(
        classes + 1, hidden, device='meta')
    state['sem_seg_head.predictor.class_embed.bias'] = torch.empty(classes + 1, device='meta')
    state.pop('criterion.empty_weight', None)
    arch = d2_architecture(state, keys_json)
    assert resolve_dataset(arch, dataset, keys_json) == dataset
    out = convert_d2_state_dict(state, keys_json, head_prefix(dataset))
    order = class_order(arch, dataset, None, keys_json)
    assert (order is not None) == dataset.endswith('-panoptic')  # interleaved ones
    if order is not None:
        reorder_classes(out, order, head_prefix(dataset), keys_json)
    written = build_config(arch, dataset, None, keys_json)
    ours = Config.fromfile(os.path.join(REPO, 'configs', config))
    ours.model.backbone.init_cfg = None
    expected = model_state_shapes(ours)
    assert model_state_shapes(written) == expected
    check_against(out, expected, keys_json)
