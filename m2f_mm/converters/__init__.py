from .mmdet import convert_head_key, convert_mmdet_state_dict

__all__ = ['convert_mmdet_state_dict', 'convert_head_key']
