"""The paper-shaped core and its rules: one target rule for the transform
and the head, class counts resolved once, the host told by the call or an
argument, the decoder as a module of its own, the criterion's random points
from one generator, and old checkpoints still loading."""
import copy

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from m2f_mm.datasets.transforms import BuildMaskTargets
from m2f_mm.models.decoders import MaskedAttentionDecoder
from m2f_mm.models.heads.hosts import targets_from_samples
from m2f_mm.models.utils.targets import resolve_class_counts
from reference_models import build_pair, ours_cfg
from synthetic import make_sample

register_all_modules(init_default_scope=False)
H, W = 64, 96


def _with_empty_thing(sample):
    """Give the first thing an empty mask (as a crop would leave it)."""
    masks = sample.gt_instances.masks.masks.copy()
    masks[0] = 0
    sample.gt_instances.masks = type(sample.gt_instances.masks)(masks, *masks.shape[1:])
    return sample


@pytest.mark.parametrize('case', ['panoptic', 'instance', 'empty_thing', 'no_targets'])
def test_transform_and_head_derive_identical_targets(case):
    """BuildMaskTargets in the workers and the head's fallback call one rule:
    the same labels and masks for the same sample (min_area included)."""
    sample = make_sample(H, W, seed=2, with_sem=case != 'instance',
                         empty=case == 'no_targets')
    if case == 'empty_thing':
        sample = _with_empty_thing(sample)
    num_stuff = 0 if case == 'instance' else 2
    head = MODELS.build(ours_cfg(num_stuff=num_stuff)).panoptic_head
    from_head = targets_from_samples([sample], head.counts, head.ignore_index)[0]
    packed = copy.deepcopy(sample)
    BuildMaskTargets(num_things_classes=3, num_stuff_classes=num_stuff).transform(
        dict(data_samples=packed))
    from_transform = targets_from_samples([packed], head.counts, head.ignore_index)[0]
    assert 'gt_segments' in packed and 'gt_segments' not in sample
    assert torch.equal(from_head[0], from_transform[0])
    assert torch.equal(from_head[1], from_transform[1])
    if case == 'empty_thing':
        assert len(from_head[0]) == len(sample.gt_instances) - 1 + num_stuff
    if case == 'no_targets':
        assert len(from_head[0]) == 0


def test_transform_and_head_agree_on_semantic_maps():
    rng = np.random.RandomState(0)
    sem = torch.from_numpy(rng.choice([0, 2, 3, 255], size=(H, W)))
    sample = SegDataSample(metainfo=dict(img_path='a.png', pad_shape=(H, W)))
    sample.gt_sem_seg = PixelData(data=sem[None])
    counts = resolve_class_counts(num_classes=4)
    from_head = targets_from_samples([sample], counts, 255)[0]
    packed = copy.deepcopy(sample)
    BuildMaskTargets(num_classes=4).transform(dict(data_samples=packed))
    from_transform = targets_from_samples([packed], counts, 255)[0]
    assert from_head[0].tolist() == [0, 2, 3]
    assert torch.equal(from_head[0], from_transform[0])
    assert torch.equal(from_head[1], from_transform[1])


def test_class_counts_resolve_once_and_disagreement_is_one_line():
    assert resolve_class_counts(3, 2) == (3, 2)
    assert resolve_class_counts(num_classes=7) == (0, 7)  # semantic
    assert resolve_class_counts(3, None, 5) == (3, 2)
    assert resolve_class_counts(3, 2, 5).total == 5
    assert resolve_class_counts(default=(80, 53)) == (80, 53)
    with pytest.raises(ValueError) as err:
        resolve_class_counts(3, 2, 6)
    msg = str(err.value)
    assert 'num_things_classes (3) + num_stuff_classes (2) != num_classes (6)' in msg
    assert '\n' not in msg
    assert BuildMaskTargets().counts is None  # it takes the head's (configure)
    cfg = ours_cfg()
    cfg.panoptic_head.num_classes = 4  # 3 things + 2 stuff
    with pytest.raises(ValueError, match=r'Mask2FormerHead: .*!= num_classes \(4\)'):
        MODELS.build(cfg)


def test_out_channels_means_seg_logit_channels():
    cfg = ours_cfg()
    head = MODELS.build(cfg).panoptic_head
    assert head.out_channels == head.num_classes == 5
    assert head.transformer_decoder.mask_embed[-1].out_features == 64  # mask_channels
    cfg.panoptic_head.out_channels = 64
    with pytest.raises(TypeError, match='give the mask embedding width as mask_channels'):
        MODELS.build(cfg)


def test_decoder_forward_round_robin_and_prediction_sets():
    """The decoder alone: 1 + L sets; layer l attends to level l % 3, which
    the sizes of the attention masks it receives show."""
    torch.manual_seed(0)
    dec = MaskedAttentionDecoder(num_classes=4, num_queries=6, num_layers=5,
                                 embed_dims=32, num_heads=4, ffn_dims=64,
                                 mask_channels=16)
    dec.init_weights()
    levels = [torch.randn(2, 32, h, w) for h, w in [(2, 3), (4, 6), (8, 12)]]
    mask_features = torch.randn(2, 16, 16, 24)
    seen = []
    for layer in dec.layers:
        layer.register_forward_hook(
            lambda m, args, out: seen.append(args[2].shape[1]))  # memory h·w
    all_cls, all_masks = dec(mask_features, levels)
    assert len(all_cls) == len(all_masks) == 6
    assert all(c.shape == (2, 6, 5) for c in all_cls)
    assert all(m.shape == (2, 6, 16, 24) for m in all_masks)
    assert seen == [6, 24, 96, 6, 24]
    with pytest.raises(ValueError, match='expected 3 feature levels, got 2'):
        dec(mask_features, levels[:2])


def test_host_from_call_signature_or_argument():
    _, ours = build_pair(seed=0)
    head = ours.panoptic_head
    x = torch.randn(1, 3, H, W)
    sample = make_sample(H, W, seed=0)
    feats = ours.extract_feat(x)
    with torch.no_grad():
        cls, masks = head.predict(feats, [sample])  # MMDet's call
        assert masks.shape[-2:] == (H, W)
        seg = head.predict(feats, [sample.metainfo], None)  # MMSeg's call
        assert seg.shape == (1, 5, H, W)
        head.host = 'mmseg'
        assert head.predict(feats, [sample.metainfo]).shape == (1, 5, H, W)
        head.host = None


def test_missing_input_size_is_an_error():
    _, ours = build_pair(seed=0)
    sample = make_sample(H, W, seed=0)
    sample.set_metainfo(dict(batch_input_shape=None, pad_shape=None))
    with pytest.raises(ValueError, match='synthetic_0.png: the data sample records '
                                         'neither batch_input_shape nor pad_shape'):
        targets_from_samples([sample], ours.panoptic_head.counts, 255)


def test_criterion_points_come_from_its_generator():
    _, ours = build_pair(seed=0)
    ours.train()
    criterion = ours.panoptic_head.criterion
    x = torch.randn(2, 3, H, W, generator=torch.Generator().manual_seed(0))
    samples = [make_sample(H, W, seed=i) for i in range(2)]
    runs = []
    with torch.no_grad():
        for seed in (5, 5, 6):
            criterion.generator = torch.Generator().manual_seed(seed)
            torch.manual_seed(seed + 100)  # the global RNG plays no part
            runs.append({k: v.item() for k, v in ours.loss(x, samples).items()})
    criterion.generator = None
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_old_and_mmdet_head_layouts_load():
    """Checkpoints of m2f_mm 0.1 (queries and prediction heads on the head)
    and MMDet's raw head layout load into the current layout."""
    ref, ours = build_pair(seed=3)
    state = ours.state_dict()
    moved = {'transformer_decoder.query_feat.': 'query_feat.',
             'transformer_decoder.query_embed.': 'query_embed.',
             'transformer_decoder.level_embed.': 'level_embed.',
             'transformer_decoder.cls_embed.': 'cls_embed.',
             'transformer_decoder.mask_embed.': 'mask_embed.'}
    old = {}
    for key, value in state.items():
        for new, before in moved.items():
            key = key.replace('panoptic_head.' + new, 'panoptic_head.' + before)
        old[key] = value
    assert 'panoptic_head.query_feat.weight' in old
    for source in (old, ref.state_dict()):
        fresh = MODELS.build(ours_cfg())
        fresh.load_state_dict(source, strict=True)
        for k, v in state.items():
            assert torch.equal(fresh.state_dict()[k], v), k
