"""Hungarian matching of queries to targets on uniformly sampled points."""
from typing import List, Optional, Tuple

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from m2f_mm.registry import TASK_UTILS
from ..utils.point_sample import RandFn, _torch_rand, point_sample
from .match_costs import class_cost, dice_cost, sigmoid_bce_cost


@TASK_UTILS.register_module()
class PointHungarianAssigner:
    """One-to-one assignment minimising
    ``cls_weight·class + mask_weight·BCE + dice_weight·Dice``, the mask terms
    on ``num_points`` points drawn uniformly per prediction set and shared by
    all its queries and targets.

    Args:
        cls_weight, mask_weight, dice_weight: cost weights (paper: 2, 5, 5).
        num_points: points per prediction set (paper: 112×112 = 12544).
    """

    def __init__(self, cls_weight: float = 2.0, mask_weight: float = 5.0,
                 dice_weight: float = 5.0, num_points: int = 12544) -> None:
        self.cls_weight = cls_weight
        self.mask_weight = mask_weight
        self.dice_weight = dice_weight
        self.num_points = num_points

    @torch.no_grad()
    def cost_matrices(self, cls_logits: Tensor, mask_logits: Optional[Tensor],
                      gt_labels: Tensor, gt_masks: Tensor, points: Tensor,
                      point_logits: Optional[Tensor] = None) -> Tensor:
        """Costs of S prediction sets of one image at once.

        Args:
            cls_logits: (S, Q, C+1).
            mask_logits: (S, Q, H, W); not read when ``point_logits`` is given.
            gt_labels: (G,).
            gt_masks: (G, H', W'), any resolution (points are normalised).
            points: (S, P, 2) in [0, 1].
            point_logits: (S, Q, P), ``mask_logits`` already sampled at
                ``points`` (the head samples a set of all images at once).

        Returns:
            (S, Q, G).
        """
        if point_logits is None:
            point_logits = point_sample(mask_logits, points)  # S×Q×P
        s = point_logits.shape[0]
        gt = gt_masks.to(point_logits.dtype).unsqueeze(0).expand(s, -1, -1, -1)
        gt_pts = point_sample(gt, points)  # S×G×P
        cost = self.cls_weight * class_cost(cls_logits, gt_labels)
        cost = cost + self.mask_weight * sigmoid_bce_cost(point_logits, gt_pts)
        cost = cost + self.dice_weight * dice_cost(point_logits, gt_pts)
        return cost

    def assign(self, cls_logits: Tensor, mask_logits: Optional[Tensor],
               gt_labels: Tensor, gt_masks: Tensor,
               points: Optional[Tensor] = None,
               rand: Optional[RandFn] = None,
               point_logits: Optional[Tensor] = None
               ) -> List[Tuple[Tensor, Tensor]]:
        """Match every prediction set of one image.

        Args as in :meth:`cost_matrices`; ``points`` default to uniform
        draws of ``rand`` (torch.rand).

        Returns:
            One (query_indices, gt_indices) pair of long tensors per set,
            sorted by query; empty when the image has no targets.
        """
        s = cls_logits.shape[0]
        device = cls_logits.device
        if points is None:
            points = (rand or _torch_rand)(s, self.num_points, 2, device=device)
        num_gts = gt_labels.numel()
        if num_gts == 0:
            empty = torch.empty(0, dtype=torch.long, device=device)
            return [(empty, empty)] * s
        cost = self.cost_matrices(cls_logits, mask_logits, gt_labels, gt_masks,
                                  points, point_logits)
        cost = cost.float().cpu().numpy()
        if not np.isfinite(cost).all():
            raise ValueError('PointHungarianAssigner: the matching cost has '
                             'NaN or inf (are the predictions finite?)')
        out = []
        for c in cost:
            rows, cols = linear_sum_assignment(c)
            out.append((torch.as_tensor(rows, dtype=torch.long, device=device),
                        torch.as_tensor(cols, dtype=torch.long, device=device)))
        return out
