"""Fast paths beside their plain references, behind one switch
(:mod:`m2f_mm.ops.fast_paths`)."""
from .chunking import chunks
from .fast_paths import fast_paths, fast_paths_enabled
from .mask_logits import MaskLogitsOfSets, mask_logit_products
from .ms_deform_attn import (ms_deform_attn, ms_deform_attn_reference,
                             ms_deform_attn_sparse)

__all__ = ['fast_paths', 'fast_paths_enabled', 'chunks', 'mask_logit_products',
           'MaskLogitsOfSets', 'ms_deform_attn', 'ms_deform_attn_reference',
           'ms_deform_attn_sparse']
