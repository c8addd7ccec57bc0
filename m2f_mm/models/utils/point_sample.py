"""Point sampling on masks (PointRend-style), as used by the matcher and the
mask losses. The random coordinates are drawn by the caller."""
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from m2f_mm.ops import chunks, deterministic_mode, gather_sample, point_sample_impl
from m2f_mm.ops.dispatch import needs_grad


def point_sample(inputs: Tensor, coords: Tensor) -> Tensor:
    """Bilinearly sample ``inputs`` at normalised ``coords`` (zeros outside,
    ``align_corners=False``): ``grid_sample``, or gathered corners where its
    backward would run under deterministic mode on CUDA.

    Args:
        inputs: (N, C, H, W).
        coords: (N, P, 2) as (x, y) in [0, 1] of the whole map.

    Returns:
        (N, C, P).
    """
    if point_sample_impl(inputs.device.type, deterministic_mode(),
                         needs_grad(inputs)) == 'gather':
        return gather_sample(inputs, coords)
    grid = coords.unsqueeze(2).mul(2.0).sub_(1.0)  # N×P×1×2 in [-1, 1]
    return F.grid_sample(inputs, grid, align_corners=False).squeeze(3)


def uncertain_point_coords(mask_logits: Tensor, candidates: Tensor,
                           num_uncertain: int, uniform: Tensor) -> Tensor:
    """Coordinates biased towards uncertain locations (|logit| near 0).

    Of the uniformly drawn ``candidates``, the ``num_uncertain`` with the
    highest uncertainty (−|logit|) are kept, followed by the uniformly drawn
    ``uniform`` ones.

    Args:
        mask_logits: (N, 1, H, W) class-agnostic mask logits.
        candidates: (N, num_points · oversample_ratio, 2) in [0, 1].
        uniform: (N, num_points − num_uncertain, 2) in [0, 1].

    Returns:
        (N, num_uncertain + uniform points, 2).
    """
    n, num_candidates = candidates.shape[:2]
    coords = candidates.new_empty(n, num_uncertain + uniform.shape[1], 2)
    # a few masks at a time: the temporaries (grid, samples) stay small
    for rows in chunks(n, num_candidates):
        sel = slice(rows.start, rows.stop)
        uncertainty = point_sample(mask_logits[sel],
                                   candidates[sel])[:, 0].abs_().neg_()
        # the order of the points does not matter to the losses: unsorted
        idx = uncertainty.topk(num_uncertain, dim=1, sorted=False).indices
        torch.gather(candidates[sel], 1, idx.unsqueeze(-1).expand(-1, -1, 2),
                     out=coords[sel, :num_uncertain])
    coords[:, num_uncertain:] = uniform
    return coords


def target_layout(gt_idx: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """How :func:`sample_by_target` lays out matches of targets ``gt_idx``
    (M,), on the host: the distinct targets ``used``, each match's ``slot``
    among them, its ``rank`` among the matches of its target, and the
    largest number of matches of one target (``width``)."""
    used, slot = np.unique(gt_idx, return_inverse=True)
    counts = np.bincount(slot, minlength=len(used))
    order = np.argsort(slot, kind='stable')
    starts = np.cumsum(counts) - counts
    rank = np.empty_like(slot)
    rank[order] = np.arange(len(slot)) - starts[slot[order]]
    return used, slot, rank, int(counts.max()) if len(counts) else 0


def sample_targets(gt_masks: Tensor, gt_idx: Tensor, coords: Tensor) -> Tensor:
    """Target ``gt_idx[m]`` sampled at ``coords[m]`` for every m
    (:func:`sample_by_target` with the layout computed here).

    gt_masks: (G, H, W); gt_idx: (M,); coords: (M, P, 2) → (M, P).
    """
    used, slot, rank, width = target_layout(gt_idx.cpu().numpy())
    on_device = [torch.from_numpy(a).to(coords.device) for a in (used, slot, rank)]
    return sample_by_target(gt_masks, *on_device, width, coords)


def sample_by_target(gt_masks: Tensor, used: Tensor, slot: Tensor, rank: Tensor,
                     width: int, coords: Tensor) -> Tensor:
    """Each match's target sampled at its points, without copying
    full-resolution masks per match: the points of all matches of one
    target are sampled in a single row of one ``grid_sample`` call.

    gt_masks: (G, H, W); ``used``, ``slot``, ``rank``, ``width`` from
    :func:`target_layout`; coords: (M, P, 2) → (M, P).
    """
    p = coords.shape[1]
    grid = coords.new_zeros(used.numel(), width, p, 2)
    grid[slot, rank] = coords
    src = gt_masks[used].unsqueeze(1).to(coords.dtype)  # U×1×H×W
    sampled = point_sample(src, grid.view(used.numel(), width * p, 2))
    return sampled.view(used.numel(), width, p)[slot, rank]
