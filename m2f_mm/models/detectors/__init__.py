from .mask2former import Mask2Former

__all__ = ['Mask2Former']
