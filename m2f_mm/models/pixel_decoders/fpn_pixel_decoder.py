"""MaskFormer's FPN pixel decoder: the lighter, faster alternative to
:class:`MSDeformAttnPixelDecoder` that the Mask2Former authors suggest when
speed matters more than the last points of accuracy."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule, caffe2_xavier_init
from torch import Tensor, nn

from m2f_mm.registry import MODELS


@MODELS.register_module()
class FPNPixelDecoder(BaseModule):
    """A plain top-down FPN over all backbone levels (MaskFormer's
    ``BasePixelDecoder``), returning the pyramid levels that Mask2Former's
    Transformer decoder reads.

    The coarsest level goes through a 3×3 conv + norm + act; every finer level
    gets a 1×1 lateral conv + norm, the coarser result upsampled to it and
    added, then a 3×3 conv + norm + act. The 1/4 output gives the mask
    features through a ``mask_kernel_size`` conv (3×3 in MaskFormer and
    MMDetection, with bias). Parameter names and shapes are those of
    MMDetection's ``PixelDecoder`` (``lateral_convs.{i}`` and
    ``output_convs.{i}`` for the finer levels, finest first;
    ``last_feat_conv``; ``mask_feature``), so its weights load unchanged.

    Args:
        in_channels: channels of the backbone levels, finest first.
        strides: their strides, finest first (checked, not otherwise used).
        feat_channels: channels of the pyramid.
        out_channels: channels of the per-pixel mask features.
        num_outs: pyramid levels returned for the Transformer decoder.
        upsample_mode: ``F.interpolate`` mode of the top-down path
            ('nearest' as in FPN and MaskFormer, or 'bilinear').
        mask_kernel_size: kernel of the mask-feature conv (3 or 1).
        norm_cfg, act_cfg: of the lateral and output convolutions.

    Returns (forward):
        mask features (B, out_channels, H/4, W/4) and the multi-scale pyramid,
        coarsest first (1/32, 1/16, 1/8 by default), each
        (B, feat_channels, h, w).
    """

    def __init__(self,
                 in_channels: Sequence[int] = (256, 512, 1024, 2048),
                 strides: Sequence[int] = (4, 8, 16, 32),
                 feat_channels: int = 256,
                 out_channels: int = 256,
                 num_outs: int = 3,
                 upsample_mode: str = 'nearest',
                 mask_kernel_size: int = 3,
                 norm_cfg: Optional[Dict] = dict(type='GN', num_groups=32),
                 act_cfg: Optional[Dict] = dict(type='ReLU'),
                 init_cfg: Optional[Dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        if len(in_channels) != len(strides):
            raise ValueError(f'{name}: in_channels {list(in_channels)} and '
                             f'strides {list(strides)} differ in length')
        if list(strides) != sorted(strides):
            raise ValueError(f'{name}: levels must be given finest first, '
                             f'got strides {list(strides)}')
        if not 1 <= num_outs <= len(in_channels):
            raise ValueError(f'{name}: num_outs must be in '
                             f'[1, {len(in_channels)}], got {num_outs}')
        if mask_kernel_size not in (1, 3):
            raise ValueError(f'{name}: mask_kernel_size must be 1 or 3, '
                             f'got {mask_kernel_size}')
        self.num_levels = len(in_channels)
        self.num_outs = num_outs
        self._upsample = dict(mode=upsample_mode)
        if upsample_mode in ('linear', 'bilinear', 'bicubic'):
            self._upsample['align_corners'] = False
        use_bias = norm_cfg is None
        # finer levels, finest first (MMDetection's layout)
        self.lateral_convs = nn.ModuleList(
            ConvModule(c, feat_channels, 1, bias=use_bias, norm_cfg=norm_cfg,
                       act_cfg=None)
            for c in in_channels[:-1])
        self.output_convs = nn.ModuleList(
            ConvModule(feat_channels, feat_channels, 3, padding=1,
                       bias=use_bias, norm_cfg=norm_cfg, act_cfg=act_cfg)
            for _ in in_channels[:-1])
        self.last_feat_conv = ConvModule(
            in_channels[-1], feat_channels, 3, padding=1, bias=use_bias,
            norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.mask_feature = nn.Conv2d(feat_channels, out_channels,
                                      mask_kernel_size,
                                      padding=mask_kernel_size // 2)

    def init_weights(self) -> None:
        # every conv (MMDetection's PixelDecoder skips the 1/8 pair and the
        # coarsest conv; MaskFormer fills them all)
        convs = [m.conv for m in (*self.lateral_convs, *self.output_convs,
                                  self.last_feat_conv)]
        for conv in convs + [self.mask_feature]:
            caffe2_xavier_init(conv, bias=0)

    def forward(self, feats: Sequence[Tensor]) -> Tuple[Tensor, List[Tensor]]:
        if len(feats) != self.num_levels:
            raise ValueError(f'{type(self).__name__} expects {self.num_levels} '
                             f'feature levels, got {len(feats)}')
        y = self.last_feat_conv(feats[-1])
        outs = [y]  # coarsest first
        for i in range(self.num_levels - 2, -1, -1):
            lateral = self.lateral_convs[i](feats[i])
            y = lateral + F.interpolate(y, size=lateral.shape[-2:],
                                        **self._upsample)
            y = self.output_convs[i](y)
            outs.append(y)
        return self.mask_feature(y), outs[:self.num_outs]
