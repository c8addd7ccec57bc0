from .criterion import Mask2FormerCriterion
from .mask_losses import class_loss, full_mask_losses, point_bce_loss, point_dice_loss

__all__ = ['Mask2FormerCriterion', 'class_loss', 'point_bce_loss',
           'point_dice_loss', 'full_mask_losses']
