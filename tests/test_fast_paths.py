"""The fast paths of :mod:`m2f_mm.ops` against their plain references: the
sparse-matrix multi-scale deformable attention against the grid_sample
reference and mmcv's PyTorch implementation (values and all three
gradients), chunked costs and point selection; the switch that turns them
all off; and the one-softplus BCE matching cost."""
import pytest
import torch
from mmcv.ops.multi_scale_deform_attn import (MultiScaleDeformableAttention,
                                              multi_scale_deformable_attn_pytorch)

import torch.nn.functional as F

from m2f_mm.models.assigners.match_costs import sigmoid_bce_cost
from m2f_mm.models.pixel_decoders.msdeformattn_pixel_decoder import \
    DeformableAttention
from m2f_mm.ops import (chunks, fast_paths, fast_paths_enabled,
                        ms_deform_attn, ms_deform_attn_reference,
                        ms_deform_attn_sparse)

SHAPES = [(7, 9), (4, 5), (2, 3)]  # non-square, odd sizes
# the autograd node of the custom op m2f_mm::ms_deform_attn_sparse
SPARSE_NODE = 'm2f_mm_ms_deform_attn_sparse'


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


@pytest.mark.parametrize('impl', ['sparse', 'reference'])
def test_equals_mmcv_forward_and_backward(impl):
    """Both our sparse fast path and our plain reference equal mmcv's
    PyTorch implementation."""
    fn = dict(sparse=ms_deform_attn_sparse, reference=ms_deform_attn_reference)[impl]
    value, loc, attn = _inputs()
    grad_out = torch.randn(value.shape[0], loc.shape[1], value.shape[2] * value.shape[3])
    ref = _value_and_grads(
        lambda v, s, a: multi_scale_deformable_attn_pytorch(
            v, torch.tensor(SHAPES), s, a), (value, loc, attn), grad_out)
    ours = _value_and_grads(lambda v, s, a: fn(v, SHAPES, s, a),
                            (value, loc, attn), grad_out)
    for name, r, o in zip(['output', 'value grad', 'location grad', 'weight grad'],
                          ref, ours):
        assert o.shape == r.shape, name
        # location gradients scale with the map size (pixels per unit)
        torch.testing.assert_close(o, r, atol=1e-5, rtol=1e-5, msg=name)


def test_switch_selects_the_reference(monkeypatch):
    """``fast_paths(False)`` and ``M2F_MM_FAST_PATHS=0`` route the dispatch
    to the reference (no custom autograd node), the block setting winning."""
    value, loc, attn = _inputs()
    assert fast_paths_enabled()
    fast = ms_deform_attn(value, SHAPES, loc, attn)
    assert SPARSE_NODE in type(fast.grad_fn).__name__
    with fast_paths(False):
        assert not fast_paths_enabled()
        plain = ms_deform_attn(value, SHAPES, loc, attn)
        assert list(chunks(10, 1 << 30)) == [range(0, 10)]
    assert SPARSE_NODE not in type(plain.grad_fn).__name__
    torch.testing.assert_close(plain, fast, atol=1e-5, rtol=1e-5)
    monkeypatch.setenv('M2F_MM_FAST_PATHS', '0')
    assert not fast_paths_enabled()
    with fast_paths(True):
        assert fast_paths_enabled()
    monkeypatch.setenv('M2F_MM_FAST_PATHS', '1')
    assert fast_paths_enabled()


def test_chunks_cover_the_range_in_bounded_pieces(monkeypatch):
    from m2f_mm.ops import chunking
    monkeypatch.setattr(chunking, 'CHUNK_ELEMENTS', 100)
    pieces = list(chunks(23, 30))  # 3 items of 30 values per piece
    assert [len(r) for r in pieces] == [3] * 7 + [2]
    assert [i for r in pieces for i in r] == list(range(23))
    assert list(chunks(2, 1000)) == [range(0, 1), range(1, 2)]  # at least one
    assert list(chunks(0, 5)) == []


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


def test_dispatch_uses_the_reference_for_other_dtypes():
    """bfloat16 (autocast) on CPU takes the grid_sample reference, computed
    in float32: exactly mmcv's PyTorch implementation on the inputs cast to
    float32, rounded to bfloat16."""
    value, loc, attn = (t.detach().to(torch.bfloat16) for t in _inputs())
    out = ms_deform_attn(value, SHAPES, loc, attn)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, ms_deform_attn_reference(value, SHAPES, loc, attn))
    ref = multi_scale_deformable_attn_pytorch(value.float(), torch.tensor(SHAPES),
                                              loc.float(), attn.float())
    assert torch.equal(out, ref.to(torch.bfloat16))


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


def test_bce_cost_equals_pairwise_bce():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 50, generator=g) * 8  # saturated ones too
    targets = (torch.rand(3, 4, 50, generator=g) > 0.5).float()
    pairwise = F.binary_cross_entropy_with_logits(
        logits[:, :, None].expand(-1, -1, 4, -1),
        targets[:, None].expand(-1, 7, -1, -1), reduction='none').mean(-1)
    torch.testing.assert_close(sigmoid_bce_cost(logits, targets), pairwise,
                               atol=1e-5, rtol=1e-6)


@pytest.mark.parametrize('num_things', [0, 3, 5])
def test_instance_fusion_equals_per_pair_computation(num_things):
    """Scores and boxes computed once per distinct query (through a reused
    buffer) equal MMDet's per-(query, class) computation; no thing class at
    all gives an empty result."""
    from mmdet.structures.mask import mask2bbox

    from m2f_mm.models.heads.fusion import instance_fusion
    g = torch.Generator().manual_seed(3)
    num_classes, q = 6, 11  # 11 queries: not a multiple of the 8-row chunks
    cls_logits = torch.randn(q, num_classes + 1, generator=g) * 3
    mask_logits = torch.randn(q, 20, 30, generator=g) * 2
    mask_logits[4] = -1  # a query with an empty mask
    res = instance_fusion(cls_logits, mask_logits, num_classes, num_things,
                          max_per_image=25)
    scores = cls_logits.softmax(-1)[:, :-1].flatten()
    top, idx = scores.topk(25, sorted=False)
    labels, query = idx % num_classes, idx // num_classes
    thing = labels < num_things
    top, labels, query = top[thing], labels[thing], query[thing]
    logits = mask_logits[query]
    binary = (logits > 0).float()
    mask_scores = (logits.sigmoid().flatten(1) * binary.flatten(1)).sum(1) / (
        binary.flatten(1).sum(1) + 1e-6)
    assert len(res) == len(labels) and (num_things == 0) == (len(res) == 0)
    if num_things:
        assert len(torch.unique(query)) < len(query), 'want repeated queries'
    assert torch.equal(res.labels, labels)
    assert torch.equal(res.masks, binary.bool())
    torch.testing.assert_close(res.scores, top * mask_scores, rtol=1e-6, atol=1e-7)
    assert torch.equal(res.bboxes, mask2bbox(binary.bool()))


def test_training_step_equal_with_fast_paths_off():
    """Every loss term and every parameter's gradient of a training step
    (same weights, same random points) with all fast paths on and off."""
    from reference_models import build_pair
    from synthetic import make_sample
    _, model = build_pair(seed=4)
    model.train()
    criterion = model.panoptic_head.criterion
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    samples = [make_sample(64, 96, seed=i) for i in range(2)]
    results = []
    for enabled in (True, False):
        criterion.generator = torch.Generator().manual_seed(3)
        model.zero_grad()
        with fast_paths(enabled):
            losses = model.loss(x, samples)
            sum(losses.values()).backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters()
                 if p.grad is not None}
        results.append(({k: v.item() for k, v in losses.items()}, grads))
    criterion.generator = None
    (loss_fast, grad_fast), (loss_plain, grad_plain) = results
    assert len(loss_fast) == 30 and loss_fast.keys() == loss_plain.keys()
    for k in loss_fast:
        assert abs(loss_fast[k] - loss_plain[k]) <= 1e-5, k
    assert grad_fast.keys() == grad_plain.keys() and len(grad_fast) > 100
    for k, g in grad_plain.items():
        torch.testing.assert_close(grad_fast[k], g, rtol=1e-3,
                                   atol=1e-5 * float(g.abs().max()) + 1e-7,
                                   msg=lambda m, k=k: f'{k}: {m}')
