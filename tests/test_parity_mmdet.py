"""Parity with MMDetection 3.3's Mask2Former on shared weights (CPU, float32):
logits of all 10 prediction sets, every loss term with the same random
points, and panoptic / instance results after fusion."""
import pytest
import torch
from mmdet.utils import register_all_modules

from m2f_mm.converters import convert_mmdet_state_dict
from reference_models import build_pair
from synthetic import losses_with_same_points, make_sample

register_all_modules(init_default_scope=False)
H, W = 64, 96


def _inputs(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, H, W, generator=g)


@pytest.fixture(scope='module')
def pair():
    return build_pair(seed=1)


def test_all_prediction_sets_match(pair):
    ref, ours = pair
    x = _inputs()
    samples = [make_sample(H, W, seed=i) for i in range(2)]
    with torch.no_grad():
        cls_ref, mask_ref = ref.panoptic_head(ref.extract_feat(x), samples)
        cls_ours, mask_ours = ours.panoptic_head(ours.extract_feat(x), samples)
    assert len(cls_ours) == len(mask_ours) == 10
    for a, b in zip(cls_ref, cls_ours):
        assert a.shape == b.shape
        torch.testing.assert_close(b, a, atol=1e-4, rtol=0)
    for a, b in zip(mask_ref, mask_ours):
        assert a.shape == b.shape == (2, 10, H // 4, W // 4)
        torch.testing.assert_close(b, a, atol=1e-4, rtol=0)


@pytest.mark.parametrize('chunked', [False, True])
@pytest.mark.parametrize('case', ['panoptic', 'instance', 'one_empty_image'])
def test_losses_match_with_same_points(pair, case, chunked, monkeypatch):
    """Every loss term and every parameter's gradient; ``chunked`` makes the
    matching costs run 3 sets at a time (4 pieces for 10 sets) and the
    uncertain-point selection 10 masks at a time, as at full size."""
    ref, ours = pair
    if chunked:
        from m2f_mm.ops import chunking
        criterion = ours.panoptic_head.criterion
        elements = 3 * ours.panoptic_head.num_queries * criterion.num_points
        monkeypatch.setattr(chunking, 'CHUNK_ELEMENTS', elements)
        assert elements // criterion.num_candidates < 20  # masks per piece
    ref.train()
    ours.train()
    try:
        samples = [make_sample(H, W, seed=i + 3, with_sem=case != 'instance',
                               empty=(case == 'one_empty_image' and i == 1))
                   for i in range(2)]
        x = _inputs(seed=5)
        losses_ref, losses_ours = losses_with_same_points(ref, ours, x, samples)
    finally:
        ref.eval()
        ours.eval()
    assert set(losses_ours) == set(losses_ref)
    assert len(losses_ours) == 30 and 'd8.loss_dice' in losses_ours
    for key, value in losses_ref.items():
        assert abs(losses_ours[key].item() - value.item()) <= 1e-4, \
            (key, losses_ours[key].item(), value.item())
    total = sum(losses_ours.values())
    # MMDet's mask terms are (1,)-shaped; ours are scalars
    assert total.dim() == 0
    assert abs(total.item() - sum(losses_ref.values()).item()) <= 1e-4
    # the gradients of every parameter equal MMDet's (ours backpropagates
    # the mask logits of all sets through one fused node on CPU)
    total.backward()
    sum(v.sum() for v in losses_ref.values()).backward()
    grads_ref = convert_mmdet_state_dict(
        {k: p.grad for k, p in ref.named_parameters() if p.grad is not None})
    grads_ours = {k: p.grad for k, p in ours.named_parameters() if p.grad is not None}
    assert set(grads_ours) == set(grads_ref) and len(grads_ours) > 100
    for key, g in grads_ref.items():
        torch.testing.assert_close(grads_ours[key], g, rtol=1e-3,
                                   atol=1e-5 * float(g.abs().max()) + 1e-7,
                                   msg=lambda m, key=key: f'{key}: {m}')
    ours.zero_grad()
    ref.zero_grad()


@pytest.mark.parametrize('ori_shape', [None, (H, W), (80, 120)])
def test_fusion_results_identical(ori_shape):
    """Confident predictions (scaled class weights) through both models'
    predict: identical panoptic maps and instance results, without
    rescaling, rescaled to the same size (skipped as the identity) and to
    another original size."""
    ref, ours = build_pair(seed=2)
    with torch.no_grad():
        for cls_embed in (ref.panoptic_head.cls_embed,
                          ours.panoptic_head.transformer_decoder.cls_embed):
            cls_embed.weight.mul_(40)
            cls_embed.bias.mul_(40)
    x = _inputs(seed=7)
    samples_ref = [make_sample(H, W, seed=i) for i in range(2)]
    samples_ours = [make_sample(H, W, seed=i) for i in range(2)]
    if ori_shape is not None:
        for s in samples_ref + samples_ours:
            s.set_metainfo(dict(ori_shape=ori_shape))
    with torch.no_grad():
        out_ref = ref.predict(x, samples_ref, rescale=ori_shape is not None)
        out_ours = ours.predict(x, samples_ours, rescale=ori_shape is not None)
    kept = 0
    for a, b in zip(out_ref, out_ours):
        pa, pb = a.pred_panoptic_seg.sem_seg, b.pred_panoptic_seg.sem_seg
        assert pb.shape[-2:] == (ori_shape or (H, W))
        assert torch.equal(pa, pb)
        kept += len(torch.unique(pa))
        ia, ib = a.pred_instances, b.pred_instances
        order_a, order_b = ia.scores.argsort(), ib.scores.argsort()
        assert torch.equal(ia.labels[order_a], ib.labels[order_b])
        assert torch.equal(ia.masks[order_a], ib.masks[order_b])
        torch.testing.assert_close(ib.scores[order_b], ia.scores[order_a],
                                   atol=1e-5, rtol=0)
        torch.testing.assert_close(ib.bboxes[order_b], ia.bboxes[order_a])
    assert kept > 2, 'the case should keep some segments to be meaningful'


def test_converted_checkpoint_file_loads(pair, tmp_path):
    """tools/convert_checkpoint.py turns an MMDet checkpoint into one that
    mmengine's load_checkpoint puts into our model with no key left over."""
    import sys
    sys.path.insert(0, 'tools')
    from convert_checkpoint import convert_file
    from mmengine.runner import load_checkpoint
    from reference_models import ours_cfg
    from mmdet.registry import MODELS
    ref, ours = pair
    src = tmp_path / 'mmdet.pth'
    torch.save({'state_dict': ref.state_dict(), 'meta': {'epoch': 1}}, src)
    dst = tmp_path / 'sub' / 'ours.pth'
    n = convert_file('mmdet', str(src), str(dst))
    assert n == len(ref.state_dict())
    fresh = MODELS.build(ours_cfg())
    load_checkpoint(fresh, str(dst), map_location='cpu', strict=True)
    for k, v in ours.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k
    # a bare state dict converts too; a non-Mask2Former file is refused
    torch.save(ref.state_dict(), src)
    convert_file('mmdet', str(src), str(dst))
    torch.save({'state_dict': {'backbone.w': torch.zeros(1)}}, src)
    with pytest.raises(ValueError, match='no Mask2Former head weights'):
        convert_file('mmdet', str(src), str(tmp_path / 'bad.pth'))
    assert not (tmp_path / 'bad.pth').exists()
