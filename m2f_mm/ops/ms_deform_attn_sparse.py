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
    there, differentiable in the three tensors."""
    return SparseDeformAttn.apply(value, sampling_locations, attention_weights,
                                  tuple(map(tuple, shapes)))


class SparseDeformAttn(torch.autograd.Function):
    """``Σ_l A_l @ value`` with A_l's rows (image, head, query) and columns
    (image, head, value of the flattened levels)."""

    @staticmethod
    def forward(ctx, value: Tensor, locations: Tensor, attn: Tensor,
                shapes: Shapes) -> Tensor:
        b, nv, heads, c = value.shape
        nq = locations.shape[1]
        v = value.permute(0, 2, 1, 3).reshape(b * heads * nv, c)
        loc = locations.permute(3, 5, 0, 2, 1, 4).contiguous()  # L×2×B×heads×Nq×P
        attn = attn.permute(3, 0, 2, 1, 4).contiguous()  # L×B×heads×Nq×P
        out = v.new_zeros(b * heads * nq, c)
        for level, corners in enumerate(_level_corners(shapes, loc, nv)):
            out.addmm_(corners.matrix(attn[level], v.shape[0]), v)  # no temporary
        ctx.save_for_backward(v, loc, attn)
        ctx.shapes = shapes
        return out.view(b, heads, nq, c).permute(0, 2, 1, 3).reshape(b, nq, heads * c)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        v, loc, attn = ctx.saved_tensors
        b, heads, nq = attn.shape[1:4]
        c = v.shape[1]
        g = grad_out.view(b, nq, heads, c).permute(0, 2, 1, 3).reshape(-1, c)
        need_value = ctx.needs_input_grad[0]
        need_weights = ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        grad_value = torch.zeros_like(v) if need_value else None
        grad_loc = torch.empty_like(loc) if need_weights else None
        grad_attn = torch.empty_like(attn) if need_weights else None
        corners_per_level = _level_corners(ctx.shapes, loc, v.shape[0] // (b * heads))
        for level, ((h, w), k) in enumerate(zip(ctx.shapes, corners_per_level)):
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
        if need_value:
            grad_value = grad_value.view(b, heads, -1, c).permute(0, 2, 1, 3)
        if need_weights:
            grad_loc = grad_loc.permute(2, 4, 3, 0, 5, 1)  # B×Nq×heads×L×P×2
            grad_attn = grad_attn.permute(1, 3, 2, 0, 4)  # B×Nq×heads×L×P
        return grad_value, grad_loc, grad_attn, None


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
