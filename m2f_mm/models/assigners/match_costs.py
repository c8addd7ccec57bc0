"""Matching costs between predictions and targets, as pure functions.

All take a leading batch of cost matrices (e.g. decoder layers) so one call
covers every prediction set of an image.
"""
import torch
import torch.nn.functional as F
from torch import Tensor


def class_cost(cls_logits: Tensor, gt_labels: Tensor) -> Tensor:
    """−p(gt class). cls_logits: (..., Q, C+1); gt_labels: (G,) → (..., Q, G)."""
    return -cls_logits.softmax(-1)[..., gt_labels]


def sigmoid_bce_cost(mask_logits: Tensor, gt_masks: Tensor) -> Tensor:
    """Mean binary cross-entropy over points.

    mask_logits: (..., Q, P); gt_masks: (..., G, P) in [0, 1] → (..., Q, G).
    """
    pos = F.binary_cross_entropy_with_logits(
        mask_logits, torch.ones_like(mask_logits), reduction='none')
    neg = F.binary_cross_entropy_with_logits(
        mask_logits, torch.zeros_like(mask_logits), reduction='none')
    cost = pos @ gt_masks.transpose(-1, -2) + neg @ (1 - gt_masks).transpose(-1, -2)
    return cost / mask_logits.shape[-1]


def dice_cost(mask_logits: Tensor, gt_masks: Tensor, eps: float = 1.0) -> Tensor:
    """1 − Dice of sigmoid(mask_logits) against each target, on points.

    mask_logits: (..., Q, P); gt_masks: (..., G, P) → (..., Q, G).
    """
    probs = mask_logits.sigmoid()
    numerator = 2 * probs @ gt_masks.transpose(-1, -2)
    denominator = probs.sum(-1)[..., :, None] + gt_masks.sum(-1)[..., None, :]
    return 1 - (numerator + eps) / (denominator + eps)
