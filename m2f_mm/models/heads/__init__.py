from .fusion import (INSTANCE_OFFSET, Mask2FormerFusionHead, instance_fusion,
                     panoptic_fusion, semantic_inference)
from .mask2former_head import Mask2FormerHead

__all__ = ['Mask2FormerHead', 'Mask2FormerFusionHead', 'panoptic_fusion',
           'instance_fusion', 'semantic_inference', 'INSTANCE_OFFSET']
