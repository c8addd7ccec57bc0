from .mask_targets import BuildMaskTargets

__all__ = ['BuildMaskTargets']
