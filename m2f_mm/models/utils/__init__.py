from .point_sample import point_sample, sample_targets, uncertain_point_coords
from .position_encoding import SinePositionEmbedding
from .targets import (ClassCounts, mask_targets, resolve_class_counts,
                      semantic_to_masks)

__all__ = ['point_sample', 'sample_targets', 'uncertain_point_coords',
           'SinePositionEmbedding', 'ClassCounts', 'mask_targets',
           'resolve_class_counts', 'semantic_to_masks']
