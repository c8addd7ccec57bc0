from .ms_deform_attn import ms_deform_attn, ms_deform_attn_sparse

__all__ = ['ms_deform_attn', 'ms_deform_attn_sparse']
