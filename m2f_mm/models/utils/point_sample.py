"""Point sampling on mask logits (PointRend-style), as used by the matcher and
the mask losses."""
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

# Draws uniform coordinates in [0, 1)^2 of the given shape (..., 2); swapped
# in tests to replay another implementation's random points.
RandFn = Callable[..., Tensor]

# Work on large batches of points in pieces of about this many values (16 MB
# in float32): glibc serves blocks this small from its heap, while every
# larger temporary is a fresh mapping whose pages fault in one by one.
CHUNK_ELEMENTS = 1 << 22


def point_sample(inputs: Tensor, coords: Tensor) -> Tensor:
    """Bilinearly sample ``inputs`` at normalised ``coords``.

    Args:
        inputs: (N, C, H, W).
        coords: (N, P, 2) as (x, y) in [0, 1] of the whole map.

    Returns:
        (N, C, P).
    """
    grid = coords.unsqueeze(2).mul(2.0).sub_(1.0)  # N×P×1×2 in [-1, 1]
    return F.grid_sample(inputs, grid, align_corners=False).squeeze(3)


def uncertain_point_coords(mask_logits: Tensor,
                           num_points: int,
                           oversample_ratio: float,
                           importance_ratio: float,
                           rand: Optional[RandFn] = None) -> Tensor:
    """Coordinates biased towards uncertain locations (|logit| near 0).

    ``num_points * oversample_ratio`` candidates are drawn uniformly; the
    ``importance_ratio`` share of ``num_points`` with the highest uncertainty
    (−|logit|) is kept and the rest is drawn uniformly again.

    Args:
        mask_logits: (N, 1, H, W) class-agnostic mask logits.

    Returns:
        (N, num_points, 2) coordinates in [0, 1].
    """
    rand = rand or _torch_rand
    n = mask_logits.shape[0]
    device = mask_logits.device
    num_sampled = int(num_points * oversample_ratio)
    num_uncertain = int(importance_ratio * num_points)
    candidates = rand(n, num_sampled, 2, device=device)
    coords = candidates.new_empty(n, num_points, 2)
    # a few masks at a time: the temporaries (grid, samples) stay small
    rows = max(1, CHUNK_ELEMENTS // max(num_sampled, 1))
    for start in range(0, n, rows):
        end = min(n, start + rows)
        uncertainty = point_sample(mask_logits[start:end],
                                   candidates[start:end])[:, 0].abs_().neg_()
        # the order of the points does not matter to the losses: unsorted
        idx = uncertainty.topk(num_uncertain, dim=1, sorted=False).indices
        torch.gather(candidates[start:end], 1, idx.unsqueeze(-1).expand(-1, -1, 2),
                     out=coords[start:end, :num_uncertain])
    if num_points > num_uncertain:
        coords[:, num_uncertain:] = rand(n, num_points - num_uncertain, 2,
                                         device=device)
    return coords


def _torch_rand(*shape: int, device=None) -> Tensor:
    return torch.rand(shape, device=device)
