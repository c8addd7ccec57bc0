"""Masked attention and training on awkward inputs: no NaN, clear errors."""
import numpy as np
import pytest
import torch
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import register_all_modules
from mmengine.structures import InstanceData

from m2f_mm.models.decoders import MaskedAttentionDecoderLayer, attention_keep_mask
from m2f_mm.models.heads.hosts import targets_from_samples
from reference_models import ours_cfg
from synthetic import make_sample

register_all_modules(init_default_scope=False)
H, W = 64, 64


def test_keep_mask_empty_query_attends_everywhere():
    logits = torch.full((2, 3, 8, 8), -5.0)
    logits[0, 1, :2, :2] = 5.0  # one query keeps a corner
    keep = attention_keep_mask(logits, (4, 4))
    assert keep.shape == (2, 3, 16) and keep.dtype == torch.bool
    assert keep[0, 1].sum() == 1  # the kept corner only
    assert keep[0, 0].all() and keep[1].all()  # empty masks attend everywhere


def test_masked_attention_no_nan_when_every_mask_is_empty():
    torch.manual_seed(0)
    layer = MaskedAttentionDecoderLayer(32, 4, 64)
    q, mem = torch.randn(2, 5, 32), torch.randn(2, 20, 32)
    keep = attention_keep_mask(torch.full((2, 5, 4, 5), -1e4), (4, 5))
    out = layer(q, torch.randn_like(q), mem, torch.randn_like(mem), keep)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


def test_whole_head_no_nan_with_empty_masks():
    """A head whose mask embedding is forced to −∞-like logits: every
    query's mask is empty at every layer; all outputs stay finite."""
    from mmdet.registry import MODELS
    model = MODELS.build(ours_cfg())
    head = model.panoptic_head
    with torch.no_grad():
        head.transformer_decoder.mask_embed[4].weight.zero_()
        head.transformer_decoder.mask_embed[4].bias.zero_()
        head.pixel_decoder.mask_feature.bias.fill_(-1.0)
        head.transformer_decoder.mask_embed[4].bias[0] = 1e4  # mask logits ≈ −1e4 everywhere
    cls, masks = head(model.extract_feat(torch.randn(1, 3, H, W)), None)
    assert (masks[0] < -100).all()
    assert all(torch.isfinite(t).all() for t in cls + masks)


@pytest.fixture(scope='module')
def model():
    from mmdet.registry import MODELS
    torch.manual_seed(0)
    m = MODELS.build(ours_cfg())
    m.init_weights()
    return m.train()


def _loss(model, samples):
    x = torch.randn(len(samples), 3, *samples[0].metainfo['batch_input_shape'])
    losses = model.loss(x, samples)
    total = sum(losses.values())
    assert torch.isfinite(total), losses
    total.backward()
    for p in model.parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all()
    model.zero_grad()
    return losses


def test_batch_without_any_target(model):
    losses = _loss(model, [make_sample(H, W, seed=i, empty=True) for i in range(2)])
    assert losses['loss_mask'] == 0 and losses['loss_dice'] == 0
    assert losses['loss_cls'] > 0  # every query learns "no object"


def test_all_zero_target_mask(model):
    s = make_sample(H, W, seed=1)
    masks = s.gt_instances.masks.masks.copy()
    masks[0] = 0
    s.gt_instances.masks = BitmapMasks(masks, H, W)
    _loss(model, [s, make_sample(H, W, seed=2)])


def test_crowd_only_image(model):
    """As MMDet packs it: the crowd instance is in ``ignored_instances``,
    not ``gt_instances``, and its region carries the thing's label in the
    semantic map, so it is neither a thing nor a stuff target."""
    s = make_sample(H, W, seed=3, empty=True)
    crowd = np.zeros((1, H, W), np.uint8)
    crowd[0, 10:40, 10:40] = 1
    s.ignored_instances = InstanceData(labels=torch.tensor([1]),
                                       masks=BitmapMasks(crowd, H, W))
    s.gt_sem_seg.sem_seg[0, 10:40, 10:40] = 1
    head = model.panoptic_head
    labels, masks = targets_from_samples([s], head.counts, head.ignore_index)[0]
    assert labels.numel() == 0 and masks.shape == (0, H, W)
    _loss(model, [s, make_sample(H, W, seed=4)])


def test_gt_masks_smaller_than_padded_input_are_padded(model):
    """Masks left at the image size (not padded like the input) are padded
    bottom/right, so normalised point coordinates stay aligned."""
    small = make_sample(48, 40, seed=5)
    small.set_metainfo(dict(batch_input_shape=(H, W), pad_shape=(H, W)))
    head = model.panoptic_head
    labels, masks = targets_from_samples([small], head.counts, head.ignore_index)[0]
    assert masks.shape[-2:] == (H, W)
    assert not masks[:, 48:].any() and not masks[:, :, 40:].any()
    _loss(model, [small, make_sample(H, W, seed=6)])


def test_gt_masks_larger_than_padded_input_fail_clearly(model):
    big = make_sample(96, 96, seed=7)
    big.set_metainfo(dict(batch_input_shape=(H, W)))
    with pytest.raises(ValueError) as err:
        model.loss(torch.randn(1, 3, H, W), [big])
    msg = str(err.value)
    assert 'synthetic_7.png' in msg and '96x96' in msg and '64x64' in msg
    assert '\n' not in msg


def test_label_out_of_range_fails_clearly(model):
    s = make_sample(H, W, seed=8)
    s.gt_instances.labels[0] = 99
    with pytest.raises(ValueError, match=r'^synthetic_8.png: gt_instances.labels: label 99 is outside \[0, 5\)'):
        model.loss(torch.randn(1, 3, H, W), [s])
