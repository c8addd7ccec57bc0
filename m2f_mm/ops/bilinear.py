"""Bilinear sampling and resizing whose backward is deterministic on CUDA.

``F.grid_sample`` and ``F.interpolate(mode='bilinear')`` accumulate their
input gradient with atomics on CUDA, and PyTorch's deterministic mode
refuses them. The forms here compute the same values (zeros outside the
map, ``align_corners=False``) from ops that PyTorch makes deterministic:

* :func:`gather_sample`: the four corners of every point gathered with
  ``torch.gather`` (its backward, a scatter-add, has a deterministic CUDA
  kernel), weighted and summed;
* :func:`matrix_resize`: resizing as two products with interpolation
  matrices, ``R_y · x · R_xᵀ``.

They are slower and hold more memory than the kernels they replace; the
dispatch in :mod:`m2f_mm.ops.dispatch` picks them only under
``torch.use_deterministic_algorithms(True)`` on CUDA.
"""
from typing import Tuple

import torch
from torch import Tensor


def corner_weights(coord: Tensor, size: int):
    """Lower and upper corner of normalised coordinates along one axis of
    ``size`` pixels, the way ``grid_sample`` unnormalises them
    (``align_corners=False``).

    Returns:
        weights (1 − f, f), 0 for a corner off the map; indices clamped onto
        the map (their weight is 0 where that moved them); bool masks of the
        corners on the map.
    """
    # grid_sample's arithmetic: [0, 1] → [-1, 1] → pixels. NaN/inf
    # coordinates land off the map and sample nothing. Indices stay exact in
    # float32 while a map has fewer than 2**24 pixels.
    grid = 2 * coord - 1
    pix = torch.nan_to_num((grid + 1) * (size / 2) - 0.5, nan=-2.0)
    low = pix.floor()
    frac = pix - low
    in_lo = (low >= 0) & (low <= size - 1)
    in_hi = (low >= -1) & (low <= size - 2)
    w_lo = torch.where(in_lo, 1 - frac, 0)
    w_hi = torch.where(in_hi, frac, 0)
    i_lo = low.clamp(0, size - 1)
    i_hi = (low + 1).clamp_(0, size - 1)
    return w_lo, w_hi, i_lo, i_hi, in_lo, in_hi


def gather_sample(inputs: Tensor, coords: Tensor) -> Tensor:
    """``F.grid_sample(inputs, grid, align_corners=False)`` at normalised
    points, from gathers.

    Args:
        inputs: (N, C, H, W).
        coords: (N, P, 2) as (x, y) in [0, 1] of the whole map.

    Returns:
        (N, C, P), in the dtype of ``inputs``.
    """
    n, c, h, w = inputs.shape
    # index arithmetic in float32 at least (float16 counts exactly to 2048)
    coords = coords.to(torch.float64 if inputs.dtype == torch.float64
                       else torch.float32)
    wx_lo, wx_hi, ix_lo, ix_hi, _, _ = corner_weights(coords[..., 0], w)
    wy_lo, wy_hi, iy_lo, iy_hi, _, _ = corner_weights(coords[..., 1], h)
    rows_lo, rows_hi = iy_lo * w, iy_hi * w
    index = torch.cat([rows_lo + ix_lo, rows_lo + ix_hi, rows_hi + ix_lo,
                       rows_hi + ix_hi], dim=1).long()  # N×4P
    weight = torch.cat([wy_lo * wx_lo, wy_lo * wx_hi, wy_hi * wx_lo,
                        wy_hi * wx_hi], dim=1).to(inputs.dtype)  # N×4P
    p = coords.shape[1]
    corners = torch.gather(inputs.reshape(n, c, h * w), 2,
                           index[:, None].expand(n, c, 4 * p))  # N×C×4P
    return (corners * weight[:, None]).view(n, c, 4, p).sum(2)


def resize_matrix(out_size: int, in_size: int, dtype: torch.dtype,
                  device: torch.device) -> Tensor:
    """(out_size, in_size) weights of bilinear resizing along one axis, as
    ``F.interpolate(size=..., align_corners=False)`` computes them: source
    coordinate (i + 0.5)·in/out − 0.5, clamped at 0."""
    scale = in_size / out_size
    src = ((torch.arange(out_size, device=device, dtype=torch.float64) + 0.5)
           * scale - 0.5).clamp_(min=0)
    low = src.floor().long().clamp_(max=in_size - 1)
    high = (low + 1).clamp_(max=in_size - 1)
    frac = src - low
    m = torch.zeros(out_size, in_size, dtype=torch.float64, device=device)
    rows = torch.arange(out_size, device=device)
    m.index_put_((rows, low), 1 - frac, accumulate=True)
    m.index_put_((rows, high), frac, accumulate=True)
    return m.to(dtype)


def matrix_resize(x: Tensor, size: Tuple[int, int]) -> Tensor:
    """``F.interpolate(x, size, mode='bilinear', align_corners=False)`` of
    (N, C, H, W) as ``R_y · x · R_xᵀ``."""
    h, w = x.shape[-2:]
    ry = resize_matrix(size[0], h, x.dtype, x.device)
    rx = resize_matrix(size[1], w, x.dtype, x.device)
    return torch.matmul(torch.matmul(ry, x), rx.t())
