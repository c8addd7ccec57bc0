"""Map MMDetection 3.3 / MMSegmentation 1.2 Mask2Former weights to ours.

MMSeg's Mask2Former head subclasses MMDet's, so both share one layout; only
the head's prefix differs (``panoptic_head.`` in MMDet, ``decode_head.`` in
MMSeg). Backbone and other keys pass through unchanged.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Tuple

# (pattern inside the head, replacement); first match wins
_HEAD_RULES: List[Tuple[str, str]] = [
    # pixel decoder
    (r'^pixel_decoder\.input_convs\.', 'pixel_decoder.input_projs.'),
    (r'^pixel_decoder\.level_encoding\.', 'pixel_decoder.level_embed.'),
    (r'^pixel_decoder\.encoder\.layers\.(\d+)\.self_attn\.',
     r'pixel_decoder.layers.\1.self_attn.'),
    (r'^pixel_decoder\.encoder\.layers\.(\d+)\.ffn\.layers\.0\.0\.',
     r'pixel_decoder.layers.\1.linear1.'),
    (r'^pixel_decoder\.encoder\.layers\.(\d+)\.ffn\.layers\.1\.',
     r'pixel_decoder.layers.\1.linear2.'),
    (r'^pixel_decoder\.encoder\.layers\.(\d+)\.norms\.0\.',
     r'pixel_decoder.layers.\1.norm1.'),
    (r'^pixel_decoder\.encoder\.layers\.(\d+)\.norms\.1\.',
     r'pixel_decoder.layers.\1.norm2.'),
    # transformer decoder
    (r'^transformer_decoder\.layers\.(\d+)\.(cross_attn|self_attn)\.attn\.',
     r'transformer_decoder.layers.\1.\2.'),
    (r'^transformer_decoder\.layers\.(\d+)\.ffn\.layers\.0\.0\.',
     r'transformer_decoder.layers.\1.linear1.'),
    (r'^transformer_decoder\.layers\.(\d+)\.ffn\.layers\.1\.',
     r'transformer_decoder.layers.\1.linear2.'),
    (r'^transformer_decoder\.layers\.(\d+)\.norms\.0\.',
     r'transformer_decoder.layers.\1.norm_cross.'),
    (r'^transformer_decoder\.layers\.(\d+)\.norms\.1\.',
     r'transformer_decoder.layers.\1.norm_self.'),
    (r'^transformer_decoder\.layers\.(\d+)\.norms\.2\.',
     r'transformer_decoder.layers.\1.norm_ffn.'),
    # queries, level embeddings, input projections and prediction heads,
    # which our decoder owns
    (r'^decoder_input_projs\.', 'transformer_decoder.input_projs.'),
    (r'^(level_embed|query_embed|query_feat|cls_embed|mask_embed)\.',
     r'transformer_decoder.\1.'),
]
HEAD_PREFIXES = ('panoptic_head.', 'decode_head.')


def convert_head_key(key: str) -> str:
    """Our name for one key of MMDet's/MMSeg's head (without its prefix)."""
    for pattern, repl in _HEAD_RULES:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    return key


def convert_mmdet_state_dict(state_dict: Dict, head_prefix: str = None
                             ) -> 'OrderedDict':
    """Convert a whole model's state dict (MMDet's Mask2Former or MMSeg's
    EncoderDecoder with a Mask2Former head) to our layout.

    Args:
        state_dict: the model's weights.
        head_prefix: put the head under this prefix instead of its own (e.g.
            ``'decode_head.'`` to move MMDet weights into an MMSeg model).
    """
    out = OrderedDict()
    for key, value in state_dict.items():
        prefix = next((p for p in HEAD_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            out[key] = value
            continue
        new = convert_head_key(key[len(prefix):])
        out[(head_prefix or prefix) + new] = value
    return out
