"""Fast paths beside their plain references, behind one switch
(:mod:`m2f_mm.ops.fast_paths`), and the deterministic forms that run under
PyTorch's deterministic mode on CUDA; :mod:`m2f_mm.ops.dispatch` picks."""
from .bilinear import gather_sample, matrix_resize
from .chunking import chunks
from .dispatch import (attention_backends, deform_attn_impl, deterministic_mode,
                       mask_point_logits_impl, point_sample_impl, resize_impl)
from .fast_paths import fast_paths, fast_paths_enabled
from .ms_deform_attn import ms_deform_attn, ms_deform_attn_reference
from .ms_deform_attn_sparse import ms_deform_attn_sparse
from .resize import resize_bilinear

__all__ = ['fast_paths', 'fast_paths_enabled', 'chunks', 'ms_deform_attn',
           'ms_deform_attn_reference', 'ms_deform_attn_sparse', 'gather_sample', 'matrix_resize',
           'resize_bilinear', 'attention_backends', 'deform_attn_impl',
           'deterministic_mode', 'mask_point_logits_impl', 'point_sample_impl',
           'resize_impl']
