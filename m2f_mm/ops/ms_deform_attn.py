"""Multi-scale deformable attention's sampling step (Deformable DETR): the
attention-weighted bilinear samples of every level.

:func:`ms_deform_attn` runs the implementation that
:func:`~m2f_mm.ops.dispatch.deform_attn_impl` picks for the inputs' device
and dtype, the fast-path switch and PyTorch's deterministic mode: mmcv's
CUDA kernel (float32; float16/bfloat16 inputs run it in float32), the
sparse-matrix form on CPU (:mod:`m2f_mm.ops.ms_deform_attn_sparse`), the
gathered corners under deterministic mode on CUDA, or the reference, one
``grid_sample`` per level.
"""
from typing import Callable, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .bilinear import gather_sample
from .dispatch import current_deform_attn_impl
from .ms_deform_attn_mmcv import ms_deform_attn_mmcv
from .ms_deform_attn_sparse import ms_deform_attn_sparse

Shapes = Sequence[Tuple[int, int]]


def ms_deform_attn(value: Tensor, shapes: Shapes, sampling_locations: Tensor,
                   attention_weights: Tensor, im2col_step: int = 64) -> Tensor:
    """Attention-weighted bilinear samples of every level.

    Args:
        value: (B, Nv, heads, C), all levels flattened in the order of
            ``shapes``.
        shapes: (h, w) of every level, in the order of ``value``.
        sampling_locations: (B, Nq, heads, levels, points, 2) as (x, y) in
            [0, 1] of each level.
        attention_weights: (B, Nq, heads, levels, points).
        im2col_step: of mmcv's CUDA kernel.

    Returns:
        (B, Nq, heads·C), in the dtype of ``value``.
    """
    impl = current_deform_attn_impl(value)
    if impl in ('mmcv', 'mmcv_float32'):
        return _mmcv(value, shapes, sampling_locations, attention_weights,
                     im2col_step)
    if impl == 'sparse':
        return ms_deform_attn_sparse(value, shapes, sampling_locations,
                                     attention_weights)
    sample = _gather_levels if impl == 'gather' else _grid_sample_levels
    return ms_deform_attn_reference(value, shapes, sampling_locations,
                                    attention_weights, sample)


def _mmcv(value: Tensor, shapes: Shapes, locations: Tensor, weights: Tensor,
          im2col_step: int) -> Tensor:
    """mmcv's kernel, in float32 where the inputs are float16/bfloat16 (the
    kernel itself would cast the locations and weights to ``value``'s dtype)."""
    work = torch.float64 if value.dtype == torch.float64 else torch.float32
    out = ms_deform_attn_mmcv(value.to(work), shapes, locations.to(work),
                              weights.to(work), im2col_step)
    return out.to(value.dtype)


def _grid_sample_levels(v: Tensor, grids: Tensor) -> Tensor:
    # v: B·heads×C×h×w; grids: B·heads×Nq×P×2 in [-1, 1] → B·heads×C×Nq×P
    return F.grid_sample(v, grids, mode='bilinear', padding_mode='zeros',
                         align_corners=False)


def _gather_levels(v: Tensor, grids: Tensor) -> Tensor:
    n, nq, p, _ = grids.shape
    coords = grids.add(1).mul(0.5).view(n, nq * p, 2)  # back to [0, 1]
    return gather_sample(v, coords).view(n, v.shape[1], nq, p)


def ms_deform_attn_reference(value: Tensor, shapes: Shapes,
                             sampling_locations: Tensor,
                             attention_weights: Tensor,
                             sample: Callable = _grid_sample_levels) -> Tensor:
    """The plain form of :func:`ms_deform_attn`: per level, one bilinear
    sampling (zeros outside, ``align_corners=False``) of every (image, head)
    at its queries' points, weighted and summed. Pure torch, any device and
    dtype (float16/bfloat16 inputs are computed in float32), exportable to
    ONNX (GridSample). ``sample(v, grids)`` samples one level:
    ``grid_sample`` by default, gathered corners for deterministic CUDA."""
    out_dtype = value.dtype
    dtypes = {value.dtype, sampling_locations.dtype, attention_weights.dtype}
    work = torch.float64 if torch.float64 in dtypes else torch.float32
    if dtypes != {work}:  # reduced or mixed (autocast)
        value, sampling_locations, attention_weights = (
            value.to(work), sampling_locations.to(work), attention_weights.to(work))
    b, _, heads, c = value.shape
    _, nq, _, levels, points, _ = sampling_locations.shape
    grids = sampling_locations.mul(2).sub(1)  # grid_sample's [-1, 1]
    grids = grids.permute(0, 2, 3, 1, 4, 5).flatten(0, 1)  # B·heads×L×Nq×P×2
    per_level = value.split([h * w for h, w in shapes], dim=1)
    sampled = []
    for level, (h, w) in enumerate(shapes):
        v = per_level[level].permute(0, 2, 3, 1).reshape(b * heads, c, h, w)
        sampled.append(sample(v, grids[:, level]))  # B·heads×C×Nq×P
    sampled = torch.stack(sampled, dim=3).flatten(3)  # B·heads×C×Nq×L·P
    weights = attention_weights.permute(0, 2, 1, 3, 4).reshape(
        b * heads, 1, nq, levels * points)
    out = (sampled * weights).sum(-1)  # B·heads×C×Nq
    return out.view(b, heads * c, nq).transpose(1, 2).to(out_dtype)
