from .masked_attention_decoder import (MaskedAttentionDecoder,
                                       MaskedAttentionDecoderLayer,
                                       attention_keep_mask)

__all__ = ['MaskedAttentionDecoder', 'MaskedAttentionDecoderLayer',
           'attention_keep_mask']
