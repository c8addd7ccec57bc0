"""The sparse-matrix form of multi-scale deformable attention's sampling
step (a CPU fast path; reference: :func:`~m2f_mm.ops.ms_deform_attn_reference`).

The reference (like mmcv's CPU fallback) takes one ``grid_sample`` per
level, a stack of the sampled values (B·heads × C × N × levels·points) and a
weighted sum; in training that is the largest tensor of the pixel decoder,
copied several times forward and backward. Here the sampling and the
attention weights are folded into one sparse matrix per level, A_l, with a
row per (image, head, query) and the four bilinear corners of its sampling
points as entries, and ``output = Σ_l A_l @ value`` is a few sparse-dense
products. All the index and weight arithmetic runs on contiguous per-level
tensors with scalar constants. Backward recomputes the matrices from the
locations instead of keeping them, and needs one sampled product per level
(the dot products of the output gradient with the sampled values) and one
product with A_lᵀ. The bilinear weights are computed the way
``grid_sample`` does (:func:`~m2f_mm.ops.bilinear.corner_weights`), so
results equal the reference up to float rounding.
"""
import warnings
from typing import List, NamedTuple, Sequence, Tuple

import torch
from torch import Tensor

from .bilinear import corner_weights

Shapes = Sequence[Tuple[int, int]]


def ms_deform_attn_sparse(value: Tensor, shapes: Shapes, sampling_locations: Tensor,
                          attention_weights: Tensor) -> Tensor:
    """The sparse-matrix form of :func:`ms_deform_attn` (CPU); arguments as
    there, differentiable in the three tensors. It runs as the custom op
    ``m2f_mm::ms_deform_attn_sparse``: ``torch.compile`` cannot trace sparse
    tensors, and sees the op as one node with a fake (shape-only) twin."""
    return torch.ops.m2f_mm.ms_deform_attn_sparse(
        value, sampling_locations, attention_weights, flat_shapes(shapes))


def flat_shapes(shapes: Shapes) -> List[int]:
    """[h0, w0, h1, w1, ...]: the form a custom op's schema takes (int[])."""
    return [size for hw in shapes for size in hw]


def _pairs(flat: Sequence[int]) -> List[Tuple[int, int]]:
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]


@torch.library.custom_op('m2f_mm::ms_deform_attn_sparse', mutates_args=())
def _sparse_forward(value: Tensor, locations: Tensor, attn: Tensor,
                    shapes: List[int]) -> Tensor:
    """``Σ_l A_l @ value`` with A_l's rows (image, head, query) and columns
    (image, head, value of the flattened levels): (B, Nq, heads·C)."""
    b, nv, heads, c = value.shape
    nq = locations.shape[1]
    v, loc, attn = _kernel_layout(value, locations, attn)
    out = v.new_zeros(b * heads * nq, c)
    for level, corners in enumerate(_level_corners(_pairs(shapes), loc, nv)):
        out.addmm_(corners.matrix(attn[level], v.shape[0]), v)  # no temporary
    return out.view(b, heads, nq, c).permute(0, 2, 1, 3).reshape(b, nq, heads * c)


@_sparse_forward.register_fake
def _(value, locations, attn, shapes):
    b, _, heads, c = value.shape
    return value.new_empty(b, locations.shape[1], heads * c)


def _kernel_layout(value: Tensor, locations: Tensor, attn: Tensor):
    """Values (B·heads·Nv, C), locations L×2×B×heads×Nq×P and weights
    L×B×heads×Nq×P, contiguous: the per-level arithmetic then runs on
    contiguous slices."""
    b, nv, heads, c = value.shape
    v = value.permute(0, 2, 1, 3).reshape(b * heads * nv, c)
    loc = locations.permute(3, 5, 0, 2, 1, 4).contiguous()
    attn = attn.permute(3, 0, 2, 1, 4).contiguous()
    return v, loc, attn


@torch.library.custom_op('m2f_mm::ms_deform_attn_sparse_backward', mutates_args=())
def _sparse_backward(grad_out: Tensor, value: Tensor, locations: Tensor,
                     attn: Tensor, shapes: List[int], need_value: bool,
                     need_weights: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """Gradients of value, locations and weights (empty where not needed:
    an op returns tensors only). The matrices are recomputed from the
    locations instead of kept from forward."""
    v, loc, attn = _kernel_layout(value, locations, attn)
    shapes = _pairs(shapes)
    b, heads, nq = attn.shape[1:4]
    c = v.shape[1]
    g = grad_out.reshape(b, nq, heads, c).permute(0, 2, 1, 3).reshape(-1, c)
    grad_value = torch.zeros_like(v) if need_value else v.new_empty(0)
    grad_loc = torch.empty_like(loc) if need_weights else loc.new_empty(0)
    grad_attn = torch.empty_like(attn) if need_weights else attn.new_empty(0)
    corners_per_level = _level_corners(shapes, loc, v.shape[0] // (b * heads))
    for level, ((h, w), k) in enumerate(zip(shapes, corners_per_level)):
        a = k.matrix(attn[level], v.shape[0])
        if need_value:
            grad_value.addmm_(_transpose(a), g)
        if not need_weights:
            continue
        # d out[row] / d A[row, col] = v[col]: one dot product per entry
        dots = torch.sparse.sampled_addmm(a, g, v.t(), beta=0.0).values()
        d_ll, d_hl, d_lh, d_hh = dots.view(k.cols.shape).unbind(-1)
        # sums over the other axis' corners, weighted
        dx_lo = k.wy_lo * d_ll + k.wy_hi * d_lh
        dx_hi = k.wy_lo * d_hl + k.wy_hi * d_hh
        dy_lo = k.wx_lo * d_ll + k.wx_hi * d_hl
        dy_hi = k.wx_lo * d_lh + k.wx_hi * d_hh
        grad_attn[level] = k.wx_lo * dx_lo + k.wx_hi * dx_hi
        # weights (1 − f, f) inside the map; pixel = location × size − 0.5
        a_l = attn[level]
        grad_loc[level, 0] = a_l * (torch.where(k.in_x_hi, dx_hi, 0) -
                                    torch.where(k.in_x_lo, dx_lo, 0)) * w
        grad_loc[level, 1] = a_l * (torch.where(k.in_y_hi, dy_hi, 0) -
                                    torch.where(k.in_y_lo, dy_lo, 0)) * h
    return _input_layout(grad_value, grad_loc, grad_attn, value.shape)


def _input_layout(grad_value: Tensor, grad_loc: Tensor, grad_attn: Tensor,
                  value_shape) -> Tuple[Tensor, Tensor, Tensor]:
    """Gradients from the kernel layout back to the inputs' (as views; the
    fake below gives the same strides, which compiled code relies on)."""
    b, nv, heads, c = value_shape
    if grad_value.numel():
        grad_value = grad_value.view(b, heads, nv, c).permute(0, 2, 1, 3)
    if grad_loc.numel():
        grad_loc = grad_loc.permute(2, 4, 3, 0, 5, 1)  # B×Nq×heads×L×P×2
        grad_attn = grad_attn.permute(1, 3, 2, 0, 4)  # B×Nq×heads×L×P
    return grad_value, grad_loc, grad_attn


@_sparse_backward.register_fake
def _(grad_out, value, locations, attn, shapes, need_value, need_weights):
    b, nv, heads, c = value.shape
    _, nq, _, levels, points, _ = locations.shape
    grad_value = value.new_empty(b * heads * nv, c) if need_value else value.new_empty(0)
    grad_loc, grad_attn = locations.new_empty(0), attn.new_empty(0)
    if need_weights:
        grad_loc = locations.new_empty(levels, 2, b, heads, nq, points)
        grad_attn = attn.new_empty(levels, b, heads, nq, points)
    return _input_layout(grad_value, grad_loc, grad_attn, value.shape)


def _setup_context(ctx, inputs, output) -> None:
    value, locations, attn, shapes = inputs
    ctx.save_for_backward(value, locations, attn)
    ctx.shapes = shapes


def _backward(ctx, grad_out: Tensor):
    value, locations, attn = ctx.saved_tensors
    need_value = ctx.needs_input_grad[0]
    need_weights = ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
    grads = torch.ops.m2f_mm.ms_deform_attn_sparse_backward(
        grad_out, value, locations, attn, ctx.shapes, need_value, need_weights)
    grad_value, grad_loc, grad_attn = grads
    return (grad_value if need_value else None,
            grad_loc if need_weights else None,
            grad_attn if need_weights else None, None)


_sparse_forward.register_autograd(_backward, setup_context=_setup_context)


class LevelCorners(NamedTuple):
    """The four bilinear corners of every sampling point of one level,
    (x_lo, y_lo), (x_hi, y_lo), (x_lo, y_hi), (x_hi, y_hi); all (B, heads,
    Nq, P), ``cols`` (B, heads, Nq, P, 4)."""
    cols: Tensor  # int32 (int64 if needed), columns into (image, head, value)
    wx_lo: Tensor  # weights along x, 0 for corners off the map
    wx_hi: Tensor
    wy_lo: Tensor
    wy_hi: Tensor
    in_x_lo: Tensor  # bool: the corner is on the map
    in_x_hi: Tensor
    in_y_lo: Tensor
    in_y_hi: Tensor

    def matrix(self, attn: Tensor, num_cols: int) -> Tensor:
        """A_l in CSR: rows (image, head, query), attention weights folded in."""
        a_lo, a_hi = attn * self.wy_lo, attn * self.wy_hi
        entries = torch.stack([a_lo * self.wx_lo, a_lo * self.wx_hi,
                               a_hi * self.wx_lo, a_hi * self.wx_hi], -1)
        per_row = entries.shape[-2] * entries.shape[-1]
        crow = torch.arange(0, entries.numel() + 1, per_row, dtype=self.cols.dtype,
                            device=entries.device)
        return _csr_from(crow, self.cols.view(-1), entries.view(-1),
                         (entries.numel() // per_row, num_cols))


def _level_corners(shapes: Shapes, loc: Tensor, nv: int) -> List[LevelCorners]:
    """Corners of every level; ``loc`` (L, 2, B, heads, Nq, P), ``nv`` values
    per (image, head)."""
    b, heads = loc.shape[2:4]
    index_dtype = torch.int32 if b * heads * nv < 2**31 and \
        loc[0, 0].numel() * 4 < 2**31 else torch.int64
    blocks = (torch.arange(b * heads, dtype=index_dtype, device=loc.device) * nv
              ).view(b, heads, 1, 1, 1)
    out, start = [], 0
    for level, (h, w) in enumerate(shapes):
        wx_lo, wx_hi, ix_lo, ix_hi, in_x_lo, in_x_hi = corner_weights(loc[level, 0], w)
        wy_lo, wy_hi, iy_lo, iy_hi, in_y_lo, in_y_hi = corner_weights(loc[level, 1], h)
        row_lo = iy_lo.mul_(w).add_(start)
        row_hi = iy_hi.mul_(w).add_(start)
        cols = torch.stack([row_lo + ix_lo, row_lo + ix_hi,
                            row_hi + ix_lo, row_hi + ix_hi], -1).to(index_dtype)
        cols += blocks
        out.append(LevelCorners(cols, wx_lo, wx_hi, wy_lo, wy_hi,
                                in_x_lo, in_x_hi, in_y_lo, in_y_hi))
        start += h * w
    return out


def _transpose(a: Tensor) -> Tensor:
    """Aᵀ in CSR layout (entries regrouped by column, stably)."""
    rows, num_cols = a.shape
    cols, entries = a.col_indices(), a.values()
    per_row = cols.numel() // rows
    sorted_cols, order = torch.sort(cols, stable=True)
    crow = torch.zeros(num_cols + 1, dtype=torch.int64, device=cols.device)
    torch.cumsum(torch.bincount(sorted_cols, minlength=num_cols), 0, out=crow[1:])
    if per_row & (per_row - 1) == 0:  # a power of two (4 points × 4 corners)
        row_of_entry = order.bitwise_right_shift(per_row.bit_length() - 1)
    else:
        row_of_entry = torch.div(order, per_row, rounding_mode='floor')
    return _csr_from(crow.to(cols.dtype), row_of_entry.to(cols.dtype),
                     entries[order], (num_cols, rows))


def _csr_from(crow: Tensor, cols: Tensor, values: Tensor, size) -> Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta state"
        warnings.simplefilter('ignore', UserWarning)
        return torch.sparse_csr_tensor(crow, cols, values, size,
                                       check_invariants=False)
