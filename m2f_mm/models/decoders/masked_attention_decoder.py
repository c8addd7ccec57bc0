"""Transformer decoder with masked cross-attention (Mask2Former, section 3.2)."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Attention(nn.Module):
    """Multi-head attention on fused SDPA kernels.

    The parameters are laid out as in ``nn.MultiheadAttention``
    (``in_proj_weight``, ``in_proj_bias``, ``out_proj``), so weights map
    one-to-one. A boolean ``keep`` mask (True = may attend) of shape
    (B, Q, K) is broadcast over heads instead of repeated per head.
    """

    def __init__(self, embed_dims: int, num_heads: int) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by '
                             f'num_heads {num_heads}')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dims, embed_dims))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dims))
        self.out_proj = nn.Linear(embed_dims, embed_dims)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                keep: Optional[Tensor] = None) -> Tensor:
        # query: B×Q×C, key/value: B×K×C, keep: B×Q×K
        b, q_len, c = query.shape
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        h = self.num_heads
        q = F.linear(query, w_q, b_q).view(b, q_len, h, -1).transpose(1, 2)
        k = F.linear(key, w_k, b_k).view(b, key.shape[1], h, -1).transpose(1, 2)
        v = F.linear(value, w_v, b_v).view(b, value.shape[1], h, -1).transpose(1, 2)
        mask = None if keep is None else keep.unsqueeze(1)  # B×1×Q×K
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(b, q_len, c))


class MaskedAttentionDecoderLayer(nn.Module):
    """Masked cross-attention → self-attention → FFN, each post-norm with a
    residual, no dropout."""

    def __init__(self, embed_dims: int = 256, num_heads: int = 8,
                 ffn_dims: int = 2048) -> None:
        super().__init__()
        self.cross_attn = Attention(embed_dims, num_heads)
        self.norm_cross = nn.LayerNorm(embed_dims)
        self.self_attn = Attention(embed_dims, num_heads)
        self.norm_self = nn.LayerNorm(embed_dims)
        self.linear1 = nn.Linear(embed_dims, ffn_dims)
        self.linear2 = nn.Linear(ffn_dims, embed_dims)
        self.norm_ffn = nn.LayerNorm(embed_dims)

    def forward(self, query: Tensor, query_pos: Tensor, memory: Tensor,
                memory_pos: Tensor, keep: Optional[Tensor]) -> Tensor:
        # query, query_pos: B×Q×C; memory, memory_pos: B×HW×C; keep: B×Q×HW
        x = query + self.cross_attn(query + query_pos, memory + memory_pos,
                                    memory, keep)
        x = self.norm_cross(x)
        qk = x + query_pos
        x = self.norm_self(x + self.self_attn(qk, qk, x))
        x = self.norm_ffn(x + self.linear2(F.relu(self.linear1(x))))
        return x


class MaskedAttentionDecoder(nn.Module):
    """A stack of :class:`MaskedAttentionDecoderLayer` and the final norm that
    is applied to the queries before every prediction."""

    def __init__(self, num_layers: int = 9, embed_dims: int = 256,
                 num_heads: int = 8, ffn_dims: int = 2048) -> None:
        super().__init__()
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.layers = nn.ModuleList(
            MaskedAttentionDecoderLayer(embed_dims, num_heads, ffn_dims)
            for _ in range(num_layers))
        self.post_norm = nn.LayerNorm(embed_dims)

    def __len__(self) -> int:
        return len(self.layers)


def attention_keep_mask(mask_logits: Tensor, size) -> Tensor:
    """Where each query may attend at the next layer's resolution.

    The previous prediction, resized bilinearly to ``size``, keeps the
    locations with sigmoid ≥ 0.5. A query that keeps nothing attends
    everywhere, so no attention row is fully masked (no NaN).

    Args:
        mask_logits: (B, Q, H, W) predicted mask logits.
        size: (h, w) of the memory the layer attends to.

    Returns:
        Bool (B, Q, h*w), detached.
    """
    with torch.no_grad():
        resized = F.interpolate(mask_logits, size=tuple(size), mode='bilinear',
                                align_corners=False)
        keep = resized.flatten(2).sigmoid() >= 0.5
        # not in place: ONNX export has no in-place `or`
        keep = keep | ~keep.any(dim=-1, keepdim=True)
    return keep
