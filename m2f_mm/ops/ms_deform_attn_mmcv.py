"""mmcv's multi-scale deformable-attention kernel (CUDA) as the custom op
``m2f_mm::ms_deform_attn_mmcv``.

mmcv calls its C++ extension from a ``torch.autograd.Function``, which
``torch.compile`` cannot look into: the graph breaks around it. As a custom
op with a fake (shape-only) implementation and a backward that is itself a
custom op, the kernel is one opaque node of the compiled forward and
backward graphs. Eagerly it makes the same two extension calls as mmcv's
Function, so the values are mmcv's.
"""
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor

from .ms_deform_attn_sparse import _pairs, flat_shapes


def ms_deform_attn_mmcv(value: Tensor, shapes: Sequence[Tuple[int, int]],
                        locations: Tensor, weights: Tensor,
                        im2col_step: int) -> Tensor:
    """mmcv's kernel on ``value`` (B, Nv, heads, C), ``locations`` (B, Nq,
    heads, levels, points, 2) and ``weights`` (B, Nq, heads, levels,
    points), all of one float dtype; returns (B, Nq, heads·C)."""
    return torch.ops.m2f_mm.ms_deform_attn_mmcv(
        value, flat_shapes(shapes), locations, weights, im2col_step)


def _ext():
    # looked up at each call so that a test can stand in for the extension
    from mmcv.ops import multi_scale_deform_attn
    return multi_scale_deform_attn.ext_module


_LEVEL_INDEX: Dict[Tuple, Tuple[Tensor, Tensor]] = {}


def _level_index(shapes: List[int], device: torch.device) -> Tuple[Tensor, Tensor]:
    """The kernel's (levels, 2) sizes and (levels,) start offsets on
    ``device``, made once per shapes and device: a tensor made from host
    data is a blocking copy on CUDA, six per forward otherwise. Inside the
    op, so a compiled graph never sees this cache."""
    key = (tuple(shapes), str(device))
    if key not in _LEVEL_INDEX:
        if len(_LEVEL_INDEX) > 64:
            _LEVEL_INDEX.clear()
        pairs = _pairs(shapes)
        sizes = [h * w for h, w in pairs]
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        _LEVEL_INDEX[key] = (torch.tensor(pairs, dtype=torch.long, device=device),
                             torch.tensor(starts, dtype=torch.long, device=device))
    return _LEVEL_INDEX[key]


@torch.library.custom_op('m2f_mm::ms_deform_attn_mmcv', mutates_args=())
def _mmcv_forward(value: Tensor, shapes: List[int], locations: Tensor,
                  weights: Tensor, im2col_step: int) -> Tensor:
    spatial, start = _level_index(shapes, value.device)
    return _ext().ms_deform_attn_forward(value, spatial, start, locations, weights,
                                         im2col_step=im2col_step)


@_mmcv_forward.register_fake
def _(value, shapes, locations, weights, im2col_step):
    b, _, heads, c = value.shape
    return value.new_empty(b, locations.shape[1], heads * c)


@torch.library.custom_op('m2f_mm::ms_deform_attn_mmcv_backward', mutates_args=())
def _mmcv_backward(grad_out: Tensor, value: Tensor, shapes: List[int],
                   locations: Tensor, weights: Tensor,
                   im2col_step: int) -> Tuple[Tensor, Tensor, Tensor]:
    spatial, start = _level_index(shapes, value.device)
    # the extension accumulates into zeroed gradients
    grad_value = torch.zeros_like(value)
    grad_loc = torch.zeros_like(locations)
    grad_weights = torch.zeros_like(weights)
    _ext().ms_deform_attn_backward(value, spatial, start, locations, weights,
                                   grad_out.contiguous(), grad_value, grad_loc,
                                   grad_weights, im2col_step=im2col_step)
    return grad_value, grad_loc, grad_weights


@_mmcv_backward.register_fake
def _(grad_out, value, shapes, locations, weights, im2col_step):
    return (torch.empty_like(value), torch.empty_like(locations),
            torch.empty_like(weights))


def _setup_context(ctx, inputs, output) -> None:
    value, shapes, locations, weights, im2col_step = inputs
    ctx.save_for_backward(value, locations, weights)
    ctx.shapes, ctx.im2col_step = shapes, im2col_step


def _backward(ctx, grad_out: Tensor):
    value, locations, weights = ctx.saved_tensors
    grad_value, grad_loc, grad_weights = torch.ops.m2f_mm.ms_deform_attn_mmcv_backward(
        grad_out, value, ctx.shapes, locations, weights, ctx.im2col_step)
    return grad_value, None, grad_loc, grad_weights, None


_mmcv_forward.register_autograd(_backward, setup_context=_setup_context)
