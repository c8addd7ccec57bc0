"""Checkpoint converters from other Mask2Former implementations: MMDet/MMSeg
(``mmdet.py``), the paper's detectron2 model zoo (``d2.py``) and Hugging
Face (``hf.py``). Each has one table of key rules; the shared machinery
(rules, checks, atomic writes, safe loading, written configs) is in
``common.py``, ``loading.py`` and ``arch.py``."""
from .d2 import convert_d2_checkpoint, convert_d2_state_dict, d2_architecture
from .loading import ConversionError, load_d2_pickle
from .mmdet import convert_head_key, convert_mmdet_state_dict

__all__ = ['convert_mmdet_state_dict', 'convert_head_key', 'ConversionError',
           'load_d2_pickle', 'convert_d2_checkpoint', 'convert_d2_state_dict',
           'd2_architecture']
