from .mask_predictions import FullMasks, MaskEmbeddings
from .masked_attention_decoder import (MaskedAttentionDecoder,
                                       MaskedAttentionDecoderLayer,
                                       attention_keep_mask, keep_where_predicted)

__all__ = ['MaskedAttentionDecoder', 'MaskedAttentionDecoderLayer',
           'attention_keep_mask', 'keep_where_predicted', 'FullMasks',
           'MaskEmbeddings']
