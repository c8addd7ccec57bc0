"""Per-image mask-classification targets: one label and one binary mask per
segment. Pure tensor functions shared by the head (when it gets MMDet's or
MMSeg's standard samples) and the data transforms (which build them in the
dataloader workers)."""
from typing import Optional, Tuple

import torch
from torch import Tensor


def semantic_to_masks(sem_seg: Tensor, label_min: int, label_max: int
                      ) -> Tuple[Tensor, Tensor]:
    """Split a label map into one mask per present label in
    [label_min, label_max); other values (ignore, things) are left out.

    Args:
        sem_seg: (H, W) integer map.

    Returns:
        labels (N,) long, ascending; masks (N, H, W) bool.
    """
    labels = torch.unique(sem_seg)
    labels = labels[(labels >= label_min) & (labels < label_max)].long()
    masks = sem_seg[None] == labels[:, None, None].to(sem_seg.dtype)
    return labels, masks


def panoptic_targets(thing_labels: Tensor, thing_masks: Tensor,
                     sem_seg: Optional[Tensor], num_things: int,
                     num_classes: int) -> Tuple[Tensor, Tensor]:
    """Things first, then one mask per stuff class present in ``sem_seg``
    (values in [num_things, num_classes)); without ``sem_seg`` (instance
    training) the things alone.

    Args:
        thing_labels: (T,) long; thing_masks: (T, H, W) bool.
        sem_seg: (H, W) or None.

    Returns:
        labels (N,) long; masks (N, H, W) bool.
    """
    if sem_seg is None or num_things == num_classes:
        return thing_labels.long(), thing_masks.bool()
    stuff_labels, stuff_masks = semantic_to_masks(sem_seg, num_things, num_classes)
    return (torch.cat([thing_labels.long(), stuff_labels.to(thing_labels.device)]),
            torch.cat([thing_masks.bool(), stuff_masks.to(thing_masks.device)]))
