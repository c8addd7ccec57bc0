from .point_sample import point_sample, uncertain_point_coords
from .position_encoding import SinePositionEmbedding
from .targets import panoptic_targets, semantic_to_masks

__all__ = ['point_sample', 'uncertain_point_coords', 'SinePositionEmbedding',
           'panoptic_targets', 'semantic_to_masks']
