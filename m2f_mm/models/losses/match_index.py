"""The matches of one criterion call, laid out on the host and sent to the
device in one copy.

The Hungarian matching runs on the CPU (scipy); everything the losses need
to know about its result (which query of which set and image matches which
target, where each match's target points come from) is index arithmetic on
those host arrays. Doing it here, in numpy, instead of on device tensors
means no ``.item()``, ``.tolist()``, ``nonzero`` or ``unique`` on the
device, and one host-to-device copy per train step for all of it.
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from ..utils.point_sample import target_layout

# per image: the (sets, queries, targets) of its matches, numpy int64
HostMatches = List[Tuple[np.ndarray, np.ndarray, np.ndarray]]


class ImagePoints(NamedTuple):
    """Where one image's matches sit in the match order, and how its
    targets are laid out for sampling (:func:`target_layout`)."""
    rows: Tensor  # (M_i,) positions among all matches
    used: Tensor  # (U,) the targets matched at least once
    slot: Tensor  # (M_i,) each match's target among ``used``
    rank: Tensor  # (M_i,) each match's place among its target's matches
    width: int  # most matches of one target


class MatchIndex(NamedTuple):
    """All matches of a call, ordered by set, then image, then query, as
    device tensors (views of one copy) and host sizes."""
    sets: Tensor  # (M,)
    images: Tensor  # (M,)
    queries: Tensor  # (M,)
    targets: Tensor  # (M,) target index within its image
    flat_targets: Tensor  # (M,) target index in the batch's concatenated targets
    set_sizes: List[int]  # matches per set
    points: List[Optional[ImagePoints]]  # per image; None: no matches
    images_host: np.ndarray  # (M,) for the full-mask loss
    targets_host: np.ndarray


def build_match_index(matches: HostMatches, num_sets: int,
                      num_targets: Sequence[int], device) -> MatchIndex:
    """Lay out ``matches`` (per image) in the losses' order and send every
    index to ``device`` in one copy."""
    per_set_image = [[(i, q[s_ == s], g[s_ == s]) for i, (s_, q, g) in enumerate(matches)]
                     for s in range(num_sets)]
    sets, images, queries, targets = [], [], [], []
    for s, blocks in enumerate(per_set_image):
        for i, q, g in blocks:
            sets.append(np.full(len(q), s))
            images.append(np.full(len(q), i))
            queries.append(q)
            targets.append(g)
    cat = (lambda xs: np.concatenate(xs).astype(np.int64) if xs else
           np.zeros(0, np.int64))
    sets, images, queries, targets = map(cat, (sets, images, queries, targets))
    offsets = np.concatenate([[0], np.cumsum(num_targets)[:-1]]).astype(np.int64)
    flat = targets + offsets[images] if len(targets) else targets
    parts = [sets, images, queries, targets, flat]
    layouts = []
    for i in range(len(matches)):
        rows = np.flatnonzero(images == i)
        if not len(rows):
            layouts.append(None)
            continue
        used, slot, rank, width = target_layout(targets[rows])
        layouts.append((len(parts), width))
        parts += [rows, used, slot, rank]
    dev = _to_device(np.concatenate(parts), device)
    views = list(dev.split([len(p) for p in parts]))
    points = [None if lay is None else ImagePoints(*views[lay[0]:lay[0] + 4], lay[1])
              for lay in layouts]
    return MatchIndex(*views[:5], np.bincount(sets, minlength=num_sets).tolist(),
                      points, images, targets)


def _to_device(host: np.ndarray, device) -> Tensor:
    """One copy; on CUDA from pinned memory, without blocking the host."""
    if torch.device(device).type == 'cuda':
        return torch.as_tensor(host).pin_memory().to(device, non_blocking=True)
    return torch.as_tensor(host, device=device)
