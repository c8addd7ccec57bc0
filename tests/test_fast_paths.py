"""The CPU fast paths against the straightforward computations they
replace: the sparse-matrix multi-scale deformable attention against mmcv's
PyTorch implementation (values and all three gradients), the mask-logit
product whose backward skips unsupervised queries, and the one-softplus
BCE matching cost."""
import pytest
import torch
from mmcv.ops.multi_scale_deform_attn import (MultiScaleDeformableAttention,
                                              multi_scale_deformable_attn_pytorch)

import torch.nn.functional as F

from m2f_mm.models.assigners.match_costs import sigmoid_bce_cost
from m2f_mm.models.heads.mask2former_head import MaskLogits
from m2f_mm.models.pixel_decoders.msdeformattn_pixel_decoder import \
    DeformableAttention
from m2f_mm.ops import ms_deform_attn, ms_deform_attn_sparse

SHAPES = [(7, 9), (4, 5), (2, 3)]  # non-square, odd sizes


def _inputs(b=2, heads=4, c=8, points=3, shapes=SHAPES, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    nv = sum(h * w for h, w in shapes)
    value = torch.randn(b, nv, heads, c, generator=g, dtype=dtype)
    # a margin outside [0, 1]: corners off the map must count as zeros
    loc = torch.rand(b, nv, heads, len(shapes), points, 2, generator=g,
                     dtype=dtype) * 1.4 - 0.2
    attn = torch.rand(b, nv, heads, len(shapes), points, generator=g, dtype=dtype)
    attn = (attn / attn.sum((-1, -2), keepdim=True))
    return [t.requires_grad_() for t in (value, loc, attn)]


def _value_and_grads(fn, tensors, grad_out):
    for t in tensors:
        t.grad = None
    out = fn(*tensors)
    out.backward(grad_out)
    return [out.detach()] + [t.grad.clone() for t in tensors]


def test_equals_mmcv_forward_and_backward():
    value, loc, attn = _inputs()
    grad_out = torch.randn(value.shape[0], loc.shape[1], value.shape[2] * value.shape[3])
    ref = _value_and_grads(
        lambda v, s, a: multi_scale_deformable_attn_pytorch(
            v, torch.tensor(SHAPES), s, a), (value, loc, attn), grad_out)
    ours = _value_and_grads(lambda v, s, a: ms_deform_attn_sparse(v, SHAPES, s, a),
                            (value, loc, attn), grad_out)
    for name, r, o in zip(['output', 'value grad', 'location grad', 'weight grad'],
                          ref, ours):
        assert o.shape == r.shape, name
        # location gradients scale with the map size (pixels per unit)
        torch.testing.assert_close(o, r, atol=1e-5, rtol=1e-5, msg=name)


def test_gradcheck_float64():
    shapes = [(3, 4), (2, 2)]
    value, loc, attn = _inputs(b=2, heads=2, c=3, points=2, shapes=shapes,
                               dtype=torch.float64, seed=1)
    assert torch.autograd.gradcheck(
        lambda v, s, a: ms_deform_attn_sparse(v, shapes, s, a),
        (value, loc, attn), eps=1e-6, atol=1e-5, fast_mode=True)


def test_off_map_and_nan_locations_sample_nothing():
    value, loc, attn = _inputs()
    with torch.no_grad():
        loc[0, :5] = 5.0  # far outside
        loc[1, :5] = float('nan')
        out = ms_deform_attn_sparse(value, SHAPES, loc, attn)
        ref = multi_scale_deformable_attn_pytorch(
            value, torch.tensor(SHAPES), loc.nan_to_num(nan=5.0), attn)
    assert torch.isfinite(out).all()
    assert out[0, :5].abs().max() == 0 and out[1, :5].abs().max() == 0
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_only_value_or_only_locations_need_grad():
    value, loc, attn = _inputs()
    for needs in ([True, False, False], [False, True, True]):
        v, s, a = (t.detach().requires_grad_(n) for t, n in zip((value, loc, attn), needs))
        ms_deform_attn_sparse(v, SHAPES, s, a).sum().backward()
        assert [t.grad is not None for t in (v, s, a)] == needs


def test_dispatch_keeps_mmcv_for_other_dtypes():
    value, loc, attn = (t.detach().to(torch.bfloat16) for t in _inputs())
    out = ms_deform_attn(value, SHAPES, loc, attn)
    ref = multi_scale_deformable_attn_pytorch(value, torch.tensor(SHAPES), loc, attn)
    assert torch.equal(out, ref)


@pytest.mark.parametrize('batch', [1, 2])
def test_module_equals_mmcv_module_on_shared_weights(batch):
    torch.manual_seed(0)
    ref = MultiScaleDeformableAttention(embed_dims=32, num_heads=4, num_levels=3,
                                        num_points=4, dropout=0.0, batch_first=True)
    ref.init_weights()
    ours = DeformableAttention(embed_dims=32, num_heads=4, num_levels=3,
                               num_points=4, dropout=0.0, batch_first=True)
    ours.load_state_dict(ref.state_dict())
    n = sum(h * w for h, w in SHAPES)
    x = torch.randn(batch, n, 32)
    pos = torch.randn(batch, n, 32)
    refs = torch.rand(batch, n, 3, 2)
    sizes = [h * w for h, w in SHAPES]
    start = torch.tensor([0] + sizes[:-1]).cumsum(0)
    expected = ref(query=x, value=x, query_pos=pos, reference_points=refs,
                   spatial_shapes=torch.tensor(SHAPES), level_start_index=start)
    torch.testing.assert_close(ours(x, x, pos, refs, SHAPES), expected,
                               atol=1e-5, rtol=1e-5)


def test_mask_logits_gradients_equal_einsum_with_sparse_rows():
    g = torch.Generator().manual_seed(0)
    embed = torch.randn(2, 6, 5, generator=g, requires_grad=True)
    features = torch.randn(2, 5, 4, 3, generator=g, requires_grad=True)
    grad = torch.randn(2, 6, 4, 3, generator=g)
    grad[0, [1, 2, 4]] = 0  # unsupervised queries
    grad[1] = 0  # an image without matches
    ref = torch.einsum('bqc,bchw->bqhw', embed, features)
    ref_grads = torch.autograd.grad(ref, (embed, features), grad)
    out = MaskLogits.apply(embed, features)
    grads = torch.autograd.grad(out, (embed, features), grad)
    torch.testing.assert_close(out, ref)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b)


def test_bce_cost_equals_pairwise_bce():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 50, generator=g) * 8  # saturated ones too
    targets = (torch.rand(3, 4, 50, generator=g) > 0.5).float()
    pairwise = F.binary_cross_entropy_with_logits(
        logits[:, :, None].expand(-1, -1, 4, -1),
        targets[:, None].expand(-1, 7, -1, -1), reduction='none').mean(-1)
    torch.testing.assert_close(sigmoid_bce_cost(logits, targets), pairwise,
                               atol=1e-5, rtol=1e-6)
