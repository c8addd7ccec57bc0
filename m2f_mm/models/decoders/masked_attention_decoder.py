"""Transformer decoder with masked cross-attention (Mask2Former, section 3.2)."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import caffe2_xavier_init
from torch import Tensor, nn

from m2f_mm.ops import attention_backends, deterministic_mode
from ..utils.position_encoding import SinePositionEmbedding
from .mask_predictions import MaskEmbeddings


class Attention(nn.Module):
    """Multi-head attention on fused SDPA kernels (the math kernel under
    deterministic mode on CUDA: :func:`~m2f_mm.ops.attention_backends`).

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
        backends = attention_backends(q.device.type, deterministic_mode())
        if backends is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            from torch.nn.attention import sdpa_kernel
            with sdpa_kernel(backends):
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
                memory_key: Tensor, keep: Optional[Tensor]) -> Tensor:
        # query, query_pos: B×Q×C; memory and memory_key (the memory plus its
        # position embedding): B×HW×C; keep: B×Q×HW
        x = query + self.cross_attn(query + query_pos, memory_key, memory, keep)
        x = self.norm_cross(x)
        qk = x + query_pos
        x = self.norm_self(x + self.self_attn(qk, qk, x))
        x = self.norm_ffn(x + self.linear2(F.relu(self.linear1(x))))
        return x


class MaskedAttentionDecoder(nn.Module):
    """Mask2Former's Transformer decoder (section 3.2) with its prediction
    heads.

    Learnable query features X0 and query position embeddings; before the
    first layer and after every layer the (normalised) queries predict class
    logits and mask logits (a product of their mask embedding with the
    per-pixel features), so there are 1 + ``num_layers`` prediction sets.
    Layer l cross-attends to pyramid level ``l % num_levels`` (coarsest
    first: 1/32 → 1/16 → 1/8, round robin), masked to where the previous
    prediction says the query's object is.

    Args:
        num_classes: K; class logits have K + 1 entries (the last: no object).
        num_queries: N.
        num_layers, embed_dims, num_heads, ffn_dims: the layer stack.
        num_levels: pyramid levels fed round robin.
        in_channels: channels of the pyramid levels; a 1×1 projection is
            added where they differ from ``embed_dims`` or when
            ``enforce_input_project``.
        mask_channels: width of the mask embedding (the per-pixel features').
    """

    def __init__(self, num_classes: int, num_queries: int = 100,
                 num_layers: int = 9, embed_dims: int = 256,
                 num_heads: int = 8, ffn_dims: int = 2048,
                 num_levels: int = 3, in_channels: Optional[int] = None,
                 mask_channels: int = 256,
                 enforce_input_project: bool = False) -> None:
        super().__init__()
        in_channels = embed_dims if in_channels is None else in_channels
        self.num_levels = num_levels
        self.input_projs = nn.ModuleList(
            nn.Conv2d(in_channels, embed_dims, 1)
            if enforce_input_project or in_channels != embed_dims else nn.Identity()
            for _ in range(num_levels))
        self.level_embed = nn.Embedding(num_levels, embed_dims)
        self.position_embedding = SinePositionEmbedding(embed_dims // 2)
        self.query_feat = nn.Embedding(num_queries, embed_dims)  # X0
        self.query_embed = nn.Embedding(num_queries, embed_dims)  # positions
        self.layers = nn.ModuleList(
            MaskedAttentionDecoderLayer(embed_dims, num_heads, ffn_dims)
            for _ in range(num_layers))
        self.post_norm = nn.LayerNorm(embed_dims)
        self.cls_embed = nn.Linear(embed_dims, num_classes + 1)
        self.mask_embed = nn.Sequential(
            nn.Linear(embed_dims, embed_dims), nn.ReLU(inplace=True),
            nn.Linear(embed_dims, embed_dims), nn.ReLU(inplace=True),
            nn.Linear(embed_dims, mask_channels))

    def init_weights(self) -> None:
        for proj in self.input_projs:
            if isinstance(proj, nn.Conv2d):
                caffe2_xavier_init(proj, bias=0)
        for p in self.layers.parameters():
            if p.dim() > 1:
                nn.init.xavier_normal_(p)

    def forward(self, mask_features: Tensor,
                multi_scale_features: Sequence[Tensor],
                embeddings: bool = False
                ) -> Tuple[List[Tensor], Union[List[Tensor], MaskEmbeddings]]:
        """All prediction sets.

        Args:
            mask_features: per-pixel embeddings (B, mask_channels, H/4, W/4).
            multi_scale_features: ``num_levels`` maps (B, C, h_l, w_l),
                coarsest first.
            embeddings: return the mask predictions as
                :class:`~m2f_mm.models.decoders.mask_predictions.MaskEmbeddings`
                (mask logits made only where used) instead of full maps.

        Returns:
            1 + num_layers class logits (B, Q, K+1) and as many mask logits
            (B, Q, H/4, W/4), from X0 first, then after every layer.
        """
        memories, memory_keys, sizes = self._memories(multi_scale_features)
        b = mask_features.shape[0]
        with torch.no_grad():  # the features at each level's size, for the masks
            level_features = [F.interpolate(mask_features, size=tuple(size),
                                            mode='bilinear', align_corners=False)
                              for size in sizes]
        query_pos = self.query_embed.weight.unsqueeze(0).expand(b, -1, -1)
        queries = self.query_feat.weight.unsqueeze(0).expand(b, -1, -1)  # B×Q×C

        # Each layer's attention mask needs the previous set's mask embedding
        # at once; it is detached, so it is made without autograd here. The
        # prediction heads of all sets, which the losses differentiate, run
        # once on the stacked queries after the loop: one LayerNorm, class
        # and mask-MLP call instead of one per set (fewer kernels, a much
        # smaller backward graph).
        states = [queries]
        for i, layer in enumerate(self.layers):
            level = i % self.num_levels
            with torch.no_grad():  # the previous set's logits at this level
                embed = self.mask_embed(self.post_norm(queries))
                keep = keep_where_predicted(torch.einsum(
                    'bqc,bchw->bqhw', embed, level_features[level]))
            queries = layer(queries, query_pos, memories[level],
                            memory_keys[level], keep)
            states.append(queries)
        all_cls, embeds = self.predict(torch.stack(states))  # S×B×Q×…
        masks = MaskEmbeddings(embeds, mask_features)
        return list(all_cls.unbind(0)), masks if embeddings else masks.all_full()

    def predict(self, queries: Tensor) -> Tuple[Tensor, Tensor]:
        """Class logits (..., Q, K+1) and mask embeddings (..., Q,
        mask_channels) of one set (B, Q, C) or of stacked sets (S, B, Q, C)."""
        queries = self.post_norm(queries)
        return self.cls_embed(queries), self.mask_embed(queries)

    def _memories(self, features: Sequence[Tensor]):
        """Per level: projected features + level embedding (B, hw, C), the
        same plus their sine position embedding (the attention keys' input,
        made once for the layers that share the level), and (h, w)."""
        if len(features) != self.num_levels:
            raise ValueError(f'MaskedAttentionDecoder: expected {self.num_levels} '
                             f'feature levels, got {len(features)}')
        memories, keys, sizes = [], [], []
        for level, feat in enumerate(features):
            src = self.input_projs[level](feat)
            h, w = src.shape[-2:]
            memory = src.flatten(2).transpose(1, 2) + self.level_embed.weight[level]
            pos = self.position_embedding(h, w, src.device, src.dtype)
            memories.append(memory)
            keys.append(memory + pos.flatten(1).t().unsqueeze(0))
            sizes.append((h, w))
        return memories, keys, sizes


def attention_keep_mask(mask_logits: Tensor, size) -> Tensor:
    """Where each query may attend at the next layer's resolution, from its
    full mask logits (B, Q, H, W) resized bilinearly to ``size`` (h, w):
    :func:`keep_where_predicted` of them. The decoder resizes the per-pixel
    features instead, which gives the same logits (resizing is linear).

    Returns:
        Bool (B, Q, h*w), detached.
    """
    with torch.no_grad():
        resized = F.interpolate(mask_logits, size=tuple(size), mode='bilinear',
                                align_corners=False)
    return keep_where_predicted(resized)


def keep_where_predicted(logits: Tensor) -> Tensor:
    """The locations with sigmoid ≥ 0.5 of (B, Q, h, w) mask logits at the
    memory's resolution. A query that keeps nothing attends everywhere, so
    no attention row is fully masked (no NaN).

    Returns:
        Bool (B, Q, h*w), detached.
    """
    with torch.no_grad():
        keep = logits.flatten(2).sigmoid() >= 0.5
        # not in place: ONNX export has no in-place `or`
        keep = keep | ~keep.any(dim=-1, keepdim=True)
    return keep
