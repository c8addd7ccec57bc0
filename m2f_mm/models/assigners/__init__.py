from .match_costs import class_cost, dice_cost, sigmoid_bce_cost
from .point_hungarian_assigner import PointHungarianAssigner

__all__ = ['PointHungarianAssigner', 'class_cost', 'dice_cost', 'sigmoid_bce_cost']
