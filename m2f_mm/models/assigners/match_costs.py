"""Matching costs between predictions and targets, as pure functions.

All take a leading batch of cost matrices (e.g. decoder layers) so one call
covers every prediction set of an image.
"""
import torch.nn.functional as F
from torch import Tensor


def class_cost(cls_logits: Tensor, gt_labels: Tensor) -> Tensor:
    """−p(gt class). cls_logits: (..., Q, C+1); gt_labels: (G,) → (..., Q, G)."""
    return -cls_logits.softmax(-1)[..., gt_labels]


def sigmoid_bce_cost(mask_logits: Tensor, gt_masks: Tensor) -> Tensor:
    """Mean binary cross-entropy over points.

    With BCE(x, 1) = softplus(−x) and BCE(x, 0) = softplus(−x) + x, the sum
    over the points of a target is Σ softplus(−x) + Σ x·(1 − t): one
    softplus pass and one matrix product.

    mask_logits: (..., Q, P); gt_masks: (..., G, P) in [0, 1] → (..., Q, G).
    """
    # softplus(−x) = −softplus(x, beta=−1), without a negated copy of x
    pos = -F.softplus(mask_logits, beta=-1).sum(-1, keepdim=True)  # ...×Q×1
    cost = pos + mask_logits @ (1 - gt_masks).transpose(-1, -2)
    return cost / mask_logits.shape[-1]


def dice_cost(mask_logits: Tensor, gt_masks: Tensor, eps: float = 1.0) -> Tensor:
    """1 − Dice of sigmoid(mask_logits) against each target, on points.

    mask_logits: (..., Q, P); gt_masks: (..., G, P) → (..., Q, G).
    """
    probs = mask_logits.sigmoid()
    numerator = 2 * (probs @ gt_masks.transpose(-1, -2))  # ×2 on the small result
    denominator = probs.sum(-1)[..., :, None] + gt_masks.sum(-1)[..., None, :]
    return 1 - (numerator + eps) / (denominator + eps)
