"""Mask2Former's losses as pure functions: weighted class cross-entropy and
point-sampled sigmoid BCE and Dice, each normalised the paper's way."""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor


def class_loss(cls_logits: Tensor, labels: Tensor, class_weight: Tensor) -> Tensor:
    """Cross-entropy over all queries, averaged by the summed class weights
    of the targets (the no-object class carries a small weight).

    cls_logits: (N, C+1); labels: (N,) with C for no object.
    """
    loss = F.cross_entropy(cls_logits, labels, weight=class_weight,
                           reduction='sum')
    return loss / class_weight[labels].sum()


def point_bce_loss(point_logits: Tensor, point_targets: Tensor,
                   num_masks: float) -> Tensor:
    """Sigmoid BCE averaged over points, summed over masks / ``num_masks``.

    point_logits, point_targets: (M, P).
    """
    loss = F.binary_cross_entropy_with_logits(point_logits, point_targets,
                                              reduction='sum')
    return loss / (num_masks * point_logits.shape[-1])


def point_dice_loss(point_logits: Tensor, point_targets: Tensor,
                    num_masks: float, eps: float = 1.0) -> Tensor:
    """1 − Dice per mask (sums, not squares, in the denominator), summed over
    masks / ``num_masks``. point_logits, point_targets: (M, P)."""
    probs = point_logits.sigmoid()
    numerator = 2 * (probs * point_targets).sum(-1)
    denominator = probs.sum(-1) + point_targets.sum(-1)
    return (1 - (numerator + eps) / (denominator + eps)).sum() / num_masks


def full_mask_losses(mask_logits: Tensor, gt_masks: Tensor, num_masks: float,
                     eps: float = 1.0, target_size: Optional[tuple] = None):
    """BCE and Dice on whole masks instead of points (for memory comparisons).

    mask_logits: (M, H, W) logits, upsampled to ``gt_masks``' size (M, H', W').
    """
    size = target_size or gt_masks.shape[-2:]
    logits = F.interpolate(mask_logits[:, None], size=size, mode='bilinear',
                           align_corners=False)[:, 0].flatten(1)
    targets = gt_masks.flatten(1).to(logits.dtype)
    return (point_bce_loss(logits, targets, num_masks),
            point_dice_loss(logits, targets, num_masks, eps))
