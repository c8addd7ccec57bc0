"""Mask2Former's losses as pure functions: weighted class cross-entropy, and
sigmoid BCE and Dice per mask (on sampled points, or on whole masks for
memory comparisons). The criterion sums the per-mask terms per prediction
set and normalises them by the number of target masks."""
import torch.nn.functional as F
from torch import Tensor


def class_loss(cls_logits: Tensor, labels: Tensor, class_weight: Tensor) -> Tensor:
    """Cross-entropy over all queries of a set, averaged by the summed class
    weights of the targets (the no-object class carries a small weight).

    cls_logits: (..., N, K+1); labels: (..., N) with K for no object → (...).
    """
    # F.cross_entropy's weighted terms, spelled out: CUDA's weighted NLL
    # kernel is refused under deterministic mode, a gather is not
    log_p = cls_logits.log_softmax(-1).gather(-1, labels[..., None])[..., 0]
    weight = class_weight[labels]
    return -(log_p * weight).sum(-1) / weight.sum(-1)


def point_bce_loss(point_logits: Tensor, point_targets: Tensor) -> Tensor:
    """Sigmoid BCE averaged over the points of each mask.

    point_logits, point_targets: (M, P) → (M,).
    """
    return F.binary_cross_entropy_with_logits(
        point_logits, point_targets, reduction='none').mean(-1)


def point_dice_loss(point_logits: Tensor, point_targets: Tensor,
                    eps: float = 1.0) -> Tensor:
    """1 − Dice of each mask (sums, not squares, in the denominator).

    point_logits, point_targets: (M, P) → (M,).
    """
    probs = point_logits.sigmoid()
    numerator = 2 * (probs * point_targets).sum(-1)
    denominator = probs.sum(-1) + point_targets.sum(-1)
    return 1 - (numerator + eps) / (denominator + eps)


def full_mask_losses(mask_logits: Tensor, gt_masks: Tensor):
    """BCE and Dice per mask on whole masks instead of points.

    mask_logits: (M, h, w), upsampled bilinearly to ``gt_masks``' size
    (M, H, W) → (M,), (M,).
    """
    logits = F.interpolate(mask_logits[:, None], size=gt_masks.shape[-2:],
                           mode='bilinear', align_corners=False)[:, 0].flatten(1)
    targets = gt_masks.flatten(1).to(logits.dtype)
    return point_bce_loss(logits, targets), point_dice_loss(logits, targets)
