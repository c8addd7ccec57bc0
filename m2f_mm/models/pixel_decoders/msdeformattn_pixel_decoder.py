"""Multi-scale deformable-attention pixel decoder (Mask2Former, section 3.2)."""
import contextlib
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmcv.cnn import ConvModule
from mmcv.ops import MultiScaleDeformableAttention
from mmengine.model import BaseModule, caffe2_xavier_init, normal_init, xavier_init
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from m2f_mm.ops import fast_paths, fast_paths_enabled, ms_deform_attn, resize_bilinear
from m2f_mm.registry import MODELS
from ..utils.position_encoding import SinePositionEmbedding

Shapes = List[Tuple[int, int]]


class DeformableAttention(MultiScaleDeformableAttention):
    """mmcv's multi-scale deformable attention (same parameters, names and
    init) whose sampling step is :func:`m2f_mm.ops.ms_deform_attn`: mmcv's
    kernel on CUDA; on CPU a sparse-matrix form, about 5× (forward) and 2.5×
    (forward + backward) faster than mmcv's PyTorch fallback, that keeps
    only its inputs for backward. Batch first, (x, y) reference points, no
    dropout; adds the residual itself."""

    def forward(self, query: Tensor, value: Tensor, query_pos: Tensor,
                reference_points: Tensor, shapes: Shapes,
                normalizer: Optional[Tensor] = None) -> Tensor:
        # query, query_pos: B×Nq×C; value: B×Nv×C; reference_points: B×Nq×L×2;
        # normalizer: level_sizes(query, shapes), made here if not given
        b, nq, _ = query.shape
        heads, levels, points = self.num_heads, self.num_levels, self.num_points
        q = query + query_pos
        v = self.value_proj(value).view(b, value.shape[1], heads, -1)
        offsets = self.sampling_offsets(q).view(b, nq, heads, levels, points, 2)
        weights = self.attention_weights(q).view(b, nq, heads, levels * points)
        weights = weights.softmax(-1).view(b, nq, heads, levels, points)
        if normalizer is None:
            normalizer = level_sizes(query, shapes)
        locations = reference_points[:, :, None, :, None, :] + \
            offsets / normalizer[:, None, :]
        out = ms_deform_attn(v, shapes, locations, weights, self.im2col_step)
        return self.output_proj(out) + query


def level_sizes(like: Tensor, shapes: Shapes) -> Tensor:
    """(w, h) of every level, (L, 2), in ``like``'s dtype and device: what
    sampling offsets are divided by. Built with ``new_full`` so that a
    traced graph (ONNX export) reads the sizes from the input instead of
    freezing them; the pixel decoder makes it once for all its layers."""
    return torch.stack([torch.stack([like.new_full((), w), like.new_full((), h)])
                        for h, w in shapes])


def _same_paths():
    """checkpoint's contexts: the recomputation in backward runs with the
    fast-path switch of the forward, so it takes the same implementations."""
    return contextlib.nullcontext(), fast_paths(fast_paths_enabled())


class DeformableEncoderLayer(nn.Module):
    """Post-norm encoder layer: deformable self-attention → FFN."""

    def __init__(self, embed_dims: int = 256, num_heads: int = 8,
                 num_levels: int = 3, num_points: int = 4,
                 ffn_dims: int = 1024) -> None:
        super().__init__()
        self.self_attn = DeformableAttention(
            embed_dims=embed_dims, num_heads=num_heads, num_levels=num_levels,
            num_points=num_points, dropout=0.0, batch_first=True)
        self.norm1 = nn.LayerNorm(embed_dims)
        self.linear1 = nn.Linear(embed_dims, ffn_dims)
        self.linear2 = nn.Linear(ffn_dims, embed_dims)
        self.norm2 = nn.LayerNorm(embed_dims)

    def forward(self, x: Tensor, pos: Tensor, reference_points: Tensor,
                shapes: Shapes, normalizer: Optional[Tensor] = None) -> Tensor:
        # x, pos: B×N×C; reference_points: B×N×L×2
        x = self.self_attn(x, x, pos, reference_points, shapes, normalizer)
        x = self.norm1(x)
        # ReLU in place on a 2-D (not a view) tensor: one large copy fewer
        hidden = self.linear1(x.flatten(0, 1)).relu_()  # BN×ffn_dims
        return self.norm2(x + self.linear2(hidden).view_as(x))


@MODELS.register_module()
class MSDeformAttnPixelDecoder(BaseModule):
    """Projects the 1/8–1/32 backbone levels, refines them with a deformable
    attention encoder and adds FPN-style laterals down to 1/4.

    Args:
        in_channels: channels of the backbone levels, finest first.
        strides: their strides, finest first.
        feat_channels: channels of the encoder and the pyramid.
        out_channels: channels of the per-pixel mask features.
        num_encoder_levels: how many of the coarsest levels the encoder sees.
        num_layers, num_heads, num_points, ffn_dims: encoder shape.
        num_outs: pyramid levels returned for the Transformer decoder.
        norm_cfg, act_cfg: of the projection and FPN convolutions.
        with_cp: in training, keep only each encoder layer's input for
            backward and recompute the layer there (``torch.utils.checkpoint``,
            like MMDetection's backbones' ``with_cp``): less memory, one more
            encoder forward per step.

    Returns (forward):
        mask features (B, out_channels, H/4, W/4) and the multi-scale pyramid,
        coarsest first, each (B, feat_channels, h, w).
    """

    def __init__(self,
                 in_channels: Sequence[int] = (256, 512, 1024, 2048),
                 strides: Sequence[int] = (4, 8, 16, 32),
                 feat_channels: int = 256,
                 out_channels: int = 256,
                 num_encoder_levels: int = 3,
                 num_layers: int = 6,
                 num_heads: int = 8,
                 num_points: int = 4,
                 ffn_dims: int = 1024,
                 num_outs: int = 3,
                 norm_cfg: Dict = dict(type='GN', num_groups=32),
                 act_cfg: Dict = dict(type='ReLU'),
                 with_cp: bool = False,
                 init_cfg: Optional[Dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) != len(strides):
            raise ValueError(
                f'MSDeformAttnPixelDecoder: in_channels {list(in_channels)} '
                f'and strides {list(strides)} differ in length')
        if not 1 <= num_encoder_levels <= len(in_channels):
            raise ValueError(
                f'MSDeformAttnPixelDecoder: num_encoder_levels must be in '
                f'[1, {len(in_channels)}], got {num_encoder_levels}')
        self.strides = list(strides)
        self.num_levels = len(in_channels)
        self.num_encoder_levels = num_encoder_levels
        self.num_outs = num_outs
        self.with_cp = with_cp
        # encoder levels, coarsest first
        self.enc_level_ids = list(
            range(self.num_levels - 1, self.num_levels - num_encoder_levels - 1, -1))
        self.input_projs = nn.ModuleList(
            ConvModule(in_channels[i], feat_channels, 1, norm_cfg=norm_cfg,
                       act_cfg=None, bias=True) for i in self.enc_level_ids)
        self.level_embed = nn.Embedding(num_encoder_levels, feat_channels)
        self.position_embedding = SinePositionEmbedding(feat_channels // 2)
        self.layers = nn.ModuleList(
            DeformableEncoderLayer(feat_channels, num_heads, num_encoder_levels,
                                   num_points, ffn_dims)
            for _ in range(num_layers))
        # FPN part for the finer levels, coarsest of them first
        self.fpn_level_ids = list(
            range(self.num_levels - num_encoder_levels - 1, -1, -1))
        use_bias = norm_cfg is None
        self.lateral_convs = nn.ModuleList(
            ConvModule(in_channels[i], feat_channels, 1, bias=use_bias,
                       norm_cfg=norm_cfg, act_cfg=None)
            for i in self.fpn_level_ids)
        self.output_convs = nn.ModuleList(
            ConvModule(feat_channels, feat_channels, 3, padding=1,
                       bias=use_bias, norm_cfg=norm_cfg, act_cfg=act_cfg)
            for _ in self.fpn_level_ids)
        self.mask_feature = nn.Conv2d(feat_channels, out_channels, 1)
        self._ref_cache: Dict[Tuple, Tensor] = {}

    def init_weights(self) -> None:
        for proj in self.input_projs:
            xavier_init(proj.conv, gain=1, bias=0, distribution='uniform')
        for conv in list(self.lateral_convs) + list(self.output_convs):
            caffe2_xavier_init(conv.conv, bias=0)
        caffe2_xavier_init(self.mask_feature, bias=0)
        normal_init(self.level_embed, mean=0, std=1)
        for p in self.layers.parameters():
            if p.dim() > 1:
                nn.init.xavier_normal_(p)
        for m in self.layers.modules():
            if isinstance(m, MultiScaleDeformableAttention):
                m.init_weights()

    def reference_points(self, shapes: List[Tuple[int, int]],
                         device: torch.device) -> Tensor:
        """Pixel centres of every encoder level, normalised: (N, 2) as (x, y);
        cached per shapes and device, except inside ``torch.compile`` (there
        they are a few ops of the graph, and a cache would add guards)."""
        if torch.compiler.is_compiling():
            return self._reference_points(shapes, device)
        key = (tuple(shapes), str(device))
        ref = self._ref_cache.get(key)
        if ref is None:
            ref = self._reference_points(shapes, device)
            if len(self._ref_cache) > 32:
                self._ref_cache.clear()
            self._ref_cache[key] = ref
        return ref

    def _reference_points(self, shapes: List[Tuple[int, int]],
                          device: torch.device) -> Tensor:
        refs = []
        for (h, w), lvl in zip(shapes, self.enc_level_ids):
            s = self.strides[lvl]
            ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * s
            xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * s
            yy, xx = torch.meshgrid(ys, xs, indexing='ij')
            refs.append(torch.stack(
                [xx.reshape(-1) / (w * s), yy.reshape(-1) / (h * s)], -1))
        return torch.cat(refs)

    def forward(self, feats: Sequence[Tensor]) -> Tuple[Tensor, List[Tensor]]:
        if len(feats) != self.num_levels:
            raise ValueError(f'MSDeformAttnPixelDecoder expects {self.num_levels} '
                             f'feature levels, got {len(feats)}')
        b = feats[0].shape[0]
        srcs, pos_embeds, shapes = [], [], []
        for i, lvl in enumerate(self.enc_level_ids):
            src = self.input_projs[i](feats[lvl])
            h, w = src.shape[-2:]
            pos = self.position_embedding(h, w, src.device, src.dtype)
            pos = pos + self.level_embed.weight[i][:, None, None]
            srcs.append(src.flatten(2))  # B×C×hw
            pos_embeds.append(pos.flatten(1))  # C×hw
            shapes.append((h, w))
        x = torch.cat(srcs, dim=2).transpose(1, 2)  # B×N×C
        pos = torch.cat(pos_embeds, dim=1).t().unsqueeze(0).expand(b, -1, -1)
        sizes = [h * w for h, w in shapes]
        ref = self.reference_points(shapes, x.device)
        ref = ref[None, :, None, :].expand(b, -1, self.num_encoder_levels, -1)
        normalizer = level_sizes(x, shapes)
        recompute = self.with_cp and self.training and torch.is_grad_enabled()
        # a compiled graph holds the recomputation itself, with the
        # implementations it traced (and checkpoint takes no other contexts
        # there)
        contexts = {} if torch.compiler.is_compiling() else dict(context_fn=_same_paths)
        for layer in self.layers:
            if recompute:
                x = checkpoint(layer, x, pos, ref, shapes, normalizer,
                               use_reentrant=False, **contexts)
            else:
                x = layer(x, pos, ref, shapes, normalizer)

        # back to maps, coarsest first: B×C×h×w
        outs = [t.transpose(1, 2).reshape(b, -1, h, w)
                for t, (h, w) in zip(x.split(sizes, dim=1), shapes)]
        for lateral, output, lvl in zip(self.lateral_convs, self.output_convs,
                                        self.fpn_level_ids):
            y = lateral(feats[lvl])
            y = y + resize_bilinear(outs[-1], y.shape[-2:])
            outs.append(output(y))
        return self.mask_feature(outs[-1]), outs[:self.num_outs]
