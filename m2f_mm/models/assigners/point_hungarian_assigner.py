"""Hungarian matching of queries to targets on sampled points."""
from typing import List, Tuple

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from m2f_mm.registry import TASK_UTILS
from m2f_mm.utils.errors import NonFiniteError
from ..utils.point_sample import point_sample
from .match_costs import class_cost, dice_cost, sigmoid_bce_cost


@TASK_UTILS.register_module()
class PointHungarianAssigner:
    """One-to-one assignment minimising
    ``cls_weight·class + mask_weight·BCE + dice_weight·Dice``, the mask terms
    on points shared by all queries and targets of a prediction set (the
    criterion draws them: 112×112 uniform points in the paper).

    Args:
        cls_weight, mask_weight, dice_weight: cost weights (paper: 2, 5, 5).
    """

    def __init__(self, cls_weight: float = 2.0, mask_weight: float = 5.0,
                 dice_weight: float = 5.0) -> None:
        self.cls_weight = cls_weight
        self.mask_weight = mask_weight
        self.dice_weight = dice_weight

    @torch.no_grad()
    def cost_matrices(self, cls_logits: Tensor, point_logits: Tensor,
                      gt_labels: Tensor, gt_masks: Tensor, points: Tensor
                      ) -> Tensor:
        """Costs of S prediction sets of one image at once.

        Args:
            cls_logits: (S, Q, K+1).
            point_logits: (S, Q, P), the mask logits sampled at ``points``.
            gt_labels: (G,).
            gt_masks: (G, H, W), any resolution (points are normalised).
            points: (S, P, 2) in [0, 1].

        Returns:
            (S, Q, G).
        """
        s = point_logits.shape[0]
        gt = gt_masks.to(point_logits.dtype).unsqueeze(0).expand(s, -1, -1, -1)
        gt_points = point_sample(gt, points)  # S×G×P
        cost = self.cls_weight * class_cost(cls_logits, gt_labels)
        cost = cost + self.mask_weight * sigmoid_bce_cost(point_logits, gt_points)
        cost = cost + self.dice_weight * dice_cost(point_logits, gt_points)
        return cost

    def assign(self, cls_logits: Tensor, point_logits: Tensor,
               gt_labels: Tensor, gt_masks: Tensor, points: Tensor,
               where: str = 'an image') -> List[Tuple[Tensor, Tensor]]:
        """Match every prediction set of one image (arguments as in
        :meth:`cost_matrices`; ``point_logits`` is not read when the image
        has no targets; ``where`` names the image in errors). A cost with
        NaN or inf is a one-line NonFiniteError. The criterion batches the
        same steps over a whole batch (:meth:`cost_matrices`, one copy to
        the host, :meth:`solve`).

        Returns:
            One (query_indices, gt_indices) pair of long tensors per set,
            sorted by query; empty when the image has no targets.
        """
        s = cls_logits.shape[0]
        device = cls_logits.device
        if gt_labels.numel() == 0:
            empty = torch.empty(0, dtype=torch.long, device=device)
            return [(empty, empty)] * s
        cost = self.cost_matrices(cls_logits, point_logits, gt_labels, gt_masks,
                                  points)
        return [(torch.as_tensor(rows, device=device), torch.as_tensor(cols, device=device))
                for rows, cols in self.solve(cost.float().cpu().numpy(), where)]

    @staticmethod
    def solve(cost: np.ndarray, where: str = 'an image'
              ) -> List[Tuple[np.ndarray, np.ndarray]]:
        """Hungarian assignments of (S, Q, G) cost matrices on the host: per
        set, (query_indices, gt_indices) int64, sorted by query. A cost with
        NaN or inf is a one-line NonFiniteError naming ``where``."""
        s = cost.shape[0]
        if not np.isfinite(cost).all():
            sets = np.nonzero(~np.isfinite(cost).reshape(s, -1).all(1))[0].tolist()
            raise NonFiniteError(f'{where}: the matching cost of decoder set(s) '
                                 f'{sets} has NaN or inf')
        out = []
        for c in cost:
            rows, cols = linear_sum_assignment(c)
            out.append((rows.astype(np.int64), cols.astype(np.int64)))
        return out
