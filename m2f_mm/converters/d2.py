"""The paper's own checkpoints (detectron2 model zoo) in our layout.

Source layout (facebookresearch/Mask2Former on detectron2):
``backbone.*`` (detectron2's ResNet or the original Swin that
``D2SwinTransformer`` wraps), ``sem_seg_head.pixel_decoder.*``,
``sem_seg_head.predictor.*``, ``criterion.empty_weight``.
Target: MMDet's/MMSeg's ``ResNet`` (style ``pytorch``: the stride sits in
the 3×3 conv, as in detectron2 with ``STRIDE_IN_1X1=False``, which all
Mask2Former models use) or ``SwinTransformer``, and our head.

Numerical notes:
- detectron2's FrozenBatchNorm2d computes ``(x - mean) / sqrt(var + 1e-5)
  * weight + bias``; MMDet's ``BN`` in eval mode (``norm_eval=True``) does the
  same with the same eps, so the statistics are copied as they are.
- The original Swin's PatchMerging concatenates the 2×2 neighbours as
  (0,0), (1,0), (0,1), (1,1) blocks of C channels; MMDet's uses
  ``nn.Unfold``, i.e. channel-major with (0,0), (0,1), (1,0), (1,1) inside:
  the norm and the reduction's input channels are permuted.
- ``relative_position_index`` is a buffer derived from the window size; the
  file's copy is dropped and MMDet's buffer is rebuilt from the window size.
- ``criterion.empty_weight`` is no weight of ours: it becomes the head's
  ``no_object_weight`` / ``class_weight`` in the written config.
"""
from collections import OrderedDict
from typing import Dict, List, Optional

import torch
from torch import Tensor

from .arch import Arch, finish_conversion, head_prefix, resolve_dataset
from .backbones import (bn_running_var, merge_norm_to_unfold, merge_reduction_to_unfold,
                        rebuild_relative_index, resnet_config, swin_config, window_of_table)
from .common import Rule, apply_rules
from .loading import ConversionError, load_d2_checkpoint

H = 'panoptic_head.'  # the head's prefix; moved for MMSeg hosts
PD = r'sem_seg_head\.pixel_decoder\.'
PR = r'sem_seg_head\.predictor\.'
SWIN = r'backbone\.layers\.(\d+)\.blocks\.(\d+)\.'
_NORM_P = r'(weight|bias|running_mean)'


def _resnet(m, leaf: str) -> str:
    stage, block, conv = int(m[1]) - 1, m[2], m[3]
    if conv == 'shortcut':
        module = 'downsample.0' if leaf == 'weight' else 'downsample.1'
    else:
        module = conv if leaf == 'weight' else conv.replace('conv', 'bn')
    return f'backbone.layer{stage}.{block}.{module}'


_RES = r'backbone\.res([2-5])\.(\d+)\.(conv[123]|shortcut)\.'

D2_RULES: List[Rule] = [
    # ---- detectron2 ResNet -> MMDet ResNet (style='pytorch')
    (r'backbone\.stem\.conv1\.weight', 'backbone.conv1.weight', None),
    (r'backbone\.stem\.conv1\.norm\.' + _NORM_P, r'backbone.bn1.\1', None),
    (r'backbone\.stem\.conv1\.norm\.running_var',
     ('backbone.bn1.running_var', 'backbone.bn1.num_batches_tracked'), bn_running_var),
    # SyncBN-trained models (ADE20K/Cityscapes R-101) also store a counter
    (r'backbone\.stem\.conv1\.norm\.num_batches_tracked', None, None),
    (_RES + r'norm\.num_batches_tracked', None, None),
    (_RES + 'weight', lambda m: _resnet(m, 'weight') + '.weight', None),
    (_RES + r'norm\.' + _NORM_P, lambda m: _resnet(m, 'norm') + '.' + m[4], None),
    (_RES + r'norm\.running_var',
     (lambda m: _resnet(m, 'norm') + '.running_var',
      lambda m: _resnet(m, 'norm') + '.num_batches_tracked'), bn_running_var),
    # ---- original Swin -> MMDet SwinTransformer
    (r'backbone\.patch_embed\.proj\.(weight|bias)', r'backbone.patch_embed.projection.\1', None),
    (r'backbone\.patch_embed\.norm\.(weight|bias)', r'backbone.patch_embed.norm.\1', None),
    (SWIN + r'(norm1|norm2)\.(weight|bias)', r'backbone.stages.\1.blocks.\2.\3.\4', None),
    (SWIN + r'attn\.(qkv\.weight|qkv\.bias|proj\.weight|proj\.bias|relative_position_bias_table)',
     r'backbone.stages.\1.blocks.\2.attn.w_msa.\3', None),
    (SWIN + r'attn\.relative_position_index',
     r'backbone.stages.\1.blocks.\2.attn.w_msa.relative_position_index', rebuild_relative_index),
    (SWIN + r'mlp\.fc1\.(weight|bias)', r'backbone.stages.\1.blocks.\2.ffn.layers.0.0.\3', None),
    (SWIN + r'mlp\.fc2\.(weight|bias)', r'backbone.stages.\1.blocks.\2.ffn.layers.1.\3', None),
    (r'backbone\.layers\.(\d+)\.downsample\.reduction\.weight',
     r'backbone.stages.\1.downsample.reduction.weight', merge_reduction_to_unfold),
    (r'backbone\.layers\.(\d+)\.downsample\.norm\.(weight|bias)',
     r'backbone.stages.\1.downsample.norm.\2', merge_norm_to_unfold),
    (r'backbone\.norm([0-3])\.(weight|bias)', r'backbone.norm\1.\2', None),
    # ---- pixel decoder (MSDeformAttnPixelDecoder); one FPN level (1/4)
    (PD + r'input_proj\.(\d+)\.0\.(weight|bias)', H + r'pixel_decoder.input_projs.\1.conv.\2',
     None),
    (PD + r'input_proj\.(\d+)\.1\.(weight|bias)', H + r'pixel_decoder.input_projs.\1.gn.\2', None),
    (PD + r'transformer\.level_embed', H + 'pixel_decoder.level_embed.weight', None),
    (PD + r'transformer\.encoder\.layers\.(\d+)\.(self_attn\.sampling_offsets|'
     r'self_attn\.attention_weights|self_attn\.value_proj|self_attn\.output_proj|'
     r'norm1|norm2|linear1|linear2)\.(weight|bias)', H + r'pixel_decoder.layers.\1.\2.\3', None),
    (PD + r'adapter_1\.weight', H + 'pixel_decoder.lateral_convs.0.conv.weight', None),
    (PD + r'adapter_1\.norm\.(weight|bias)', H + r'pixel_decoder.lateral_convs.0.gn.\1', None),
    (PD + r'layer_1\.weight', H + 'pixel_decoder.output_convs.0.conv.weight', None),
    (PD + r'layer_1\.norm\.(weight|bias)', H + r'pixel_decoder.output_convs.0.gn.\1', None),
    (PD + r'mask_features\.(weight|bias)', H + r'pixel_decoder.mask_feature.\1', None),
    # ---- masked-attention decoder (MultiScaleMaskedTransformerDecoder)
    (PR + r'transformer_cross_attention_layers\.(\d+)\.multihead_attn\.(.+)',
     H + r'transformer_decoder.layers.\1.cross_attn.\2', None),
    (PR + r'transformer_cross_attention_layers\.(\d+)\.norm\.(weight|bias)',
     H + r'transformer_decoder.layers.\1.norm_cross.\2', None),
    (PR + r'transformer_self_attention_layers\.(\d+)\.self_attn\.(.+)',
     H + r'transformer_decoder.layers.\1.self_attn.\2', None),
    (PR + r'transformer_self_attention_layers\.(\d+)\.norm\.(weight|bias)',
     H + r'transformer_decoder.layers.\1.norm_self.\2', None),
    (PR + r'transformer_ffn_layers\.(\d+)\.(linear1|linear2)\.(weight|bias)',
     H + r'transformer_decoder.layers.\1.\2.\3', None),
    (PR + r'transformer_ffn_layers\.(\d+)\.norm\.(weight|bias)',
     H + r'transformer_decoder.layers.\1.norm_ffn.\2', None),
    (PR + r'decoder_norm\.(weight|bias)', H + r'transformer_decoder.post_norm.\1', None),
    (PR + r'(query_feat|query_embed|level_embed)\.weight', H + r'transformer_decoder.\1.weight',
     None),
    (PR + r'input_proj\.(\d+)\.(weight|bias)', H + r'transformer_decoder.input_projs.\1.\2', None),
    (PR + r'class_embed\.(weight|bias)', H + r'transformer_decoder.cls_embed.\1', None),
    (PR + r'mask_embed\.layers\.([0-2])\.(weight|bias)',
     lambda m: f'{H}transformer_decoder.mask_embed.{2 * int(m[1])}.{m[2]}', None),
    # the no-object weight goes into the config (class_weight), not the weights
    (r'criterion\.empty_weight', None, None),
    # input normalisation, when stored, goes into the data preprocessor
    (r'pixel_(mean|std)', None, None),
]


def convert_d2_state_dict(state: Dict[str, Tensor], where: str = 'checkpoint',
                          head_prefix: str = H) -> 'OrderedDict[str, Tensor]':
    """A detectron2 Mask2Former state dict in our layout; the head goes
    under ``head_prefix`` (``panoptic_head.`` for MMDet, ``decode_head.`` for
    MMSeg). Raises a one-line :class:`ConversionError` for keys no rule
    converts."""
    out = apply_rules(state, D2_RULES, where)
    if head_prefix != H:
        out = OrderedDict((head_prefix + k[len(H):] if k.startswith(H) else k, v)
                          for k, v in out.items())
    return out


# ------------------------------------------------------------- architecture
def _count(state: Dict[str, Tensor], prefix: str) -> int:
    """How many numbered children ``prefix{i}.`` the keys have."""
    ids = {k[len(prefix):].split('.', 1)[0] for k in state if k.startswith(prefix)}
    return len({i for i in ids if i.isdigit()})


def _shape(state: Dict[str, Tensor], key: str, where: str) -> torch.Size:
    if key not in state:
        raise ConversionError(f'{where}: {key} is missing; not a Mask2Former '
                              'checkpoint of the supported layout')
    return state[key].shape


def d2_architecture(state: Dict[str, Tensor], where: str = 'checkpoint') -> Arch:
    """Widths and depths read from a detectron2 Mask2Former state dict."""
    pd, pr = 'sem_seg_head.pixel_decoder.', 'sem_seg_head.predictor.'
    if 'backbone.stem.conv1.weight' in state:
        backbone = resnet_config(
            [_count(state, f'backbone.res{s}.') for s in range(2, 6)],
            stem_channels=_shape(state, 'backbone.stem.conv1.weight', where)[0],
            base_channels=_shape(state, 'backbone.res2.0.conv1.weight', where)[0],
            where=where)
    elif 'backbone.patch_embed.proj.weight' in state:
        proj = _shape(state, 'backbone.patch_embed.proj.weight', where)
        stages = _count(state, 'backbone.layers.')
        table = 'attn.relative_position_bias_table'
        fc1 = _shape(state, 'backbone.layers.0.blocks.0.mlp.fc1.weight', where)
        if any(k.startswith('backbone.absolute_pos_embed') for k in state):
            raise ConversionError(f'{where}: Swin with an absolute position embedding '
                                  '(APE) is not supported')
        window = window_of_table(_shape(state, f'backbone.layers.0.blocks.0.{table}',
                                        where)[0])
        backbone = swin_config(
            embed_dims=proj[0], patch_size=proj[-1],
            depths=[_count(state, f'backbone.layers.{i}.blocks.') for i in range(stages)],
            num_heads=[_shape(state, f'backbone.layers.{i}.blocks.0.{table}', where)[1]
                       for i in range(stages)],
            window_size=window, mlp_ratio=fc1[0] / fc1[1],
            qkv_bias='backbone.layers.0.blocks.0.attn.qkv.bias' in state,
            # the official window-12 models were pretrained at 384, window-7 ones
            # at 224; without an absolute position embedding it changes nothing
            pretrain_img_size=384 if window == 12 else 224,
            patch_norm='backbone.patch_embed.norm.weight' in state)
    else:
        raise ConversionError(f'{where}: backbone is neither detectron2 ResNet '
                              '(backbone.stem.*) nor Swin (backbone.patch_embed.*)')

    levels = _shape(state, pd + 'transformer.level_embed', where)[0]
    enc_in = [_shape(state, f'{pd}input_proj.{i}.0.weight', where)[1]
              for i in range(levels)]  # coarsest first
    fpn_in = [_shape(state, pd + 'adapter_1.weight', where)[1]]
    conv_dim = _shape(state, pd + 'input_proj.0.0.weight', where)[0]
    attn_weights = _shape(state, pd + 'transformer.encoder.layers.0.self_attn.'
                          'attention_weights.weight', where)[0]
    points = 4  # fixed in the original's encoder
    enc_heads = attn_weights // (levels * points)
    query_feat = _shape(state, pr + 'query_feat.weight', where)
    hidden = query_feat[1]
    if hidden != conv_dim:
        raise ConversionError(f'{where}: decoder width {hidden} differs from the pixel '
                              f'decoder width {conv_dim}; not supported')
    return Arch(
        backbone=backbone,
        in_channels=fpn_in + enc_in[::-1],
        feat_channels=conv_dim,
        mask_channels=_shape(state, pd + 'mask_features.weight', where)[0],
        num_queries=query_feat[0],
        num_classes=_shape(state, pr + 'class_embed.weight', where)[0] - 1,
        enc_layers=_count(state, pd + 'transformer.encoder.layers.'),
        enc_heads=enc_heads,
        enc_points=points,
        enc_ffn=_shape(state, pd + 'transformer.encoder.layers.0.linear1.weight', where)[0],
        enc_levels=levels,
        dec_layers=_count(state, pr + 'transformer_ffn_layers.'),
        # the original uses one NHEADS for the encoder and the decoder
        dec_heads=enc_heads,
        dec_ffn=_shape(state, pr + 'transformer_ffn_layers.0.linear1.weight', where)[0],
        enforce_input_project=any(k.startswith(pr + 'input_proj.') for k in state),
        class_weight=_values(state, 'criterion.empty_weight'),
        # the original reads RGB; our pipelines load BGR, hence bgr_to_rgb
        mean=_stat(state, 'pixel_mean', [123.675, 116.28, 103.53]),
        std=_stat(state, 'pixel_std', [58.395, 57.12, 57.375]), bgr_to_rgb=True)


def _values(state: Dict[str, Tensor], key: str) -> Optional[List[float]]:
    """A small tensor's values; None when absent or without data (a layout
    read from names and shapes only, on the meta device)."""
    value = state.get(key)
    if value is None or value.is_meta:
        return None
    return [float(v) for v in value.flatten()]


def _stat(state: Dict[str, Tensor], key: str, default: List[float]) -> List[float]:
    return _values(state, key) or default


def convert_d2_checkpoint(src: str, dst: str, config_out: Optional[str] = None,
                          dataset: Optional[str] = None,
                          num_things: Optional[int] = None,
                          thing_ids: Optional[List[int]] = None) -> dict:
    """``model_final.pkl`` (or a detectron2 ``.pth``) → our checkpoint at
    ``dst`` and, with ``config_out``, a config that builds its model.

    ``dataset`` (a key of :data:`m2f_mm.converters.arch.DATASETS`) picks the config to start from; by default the
    class count names it. ``num_things`` splits a panoptic model's classes
    when they are not the dataset's. Raises :class:`ConversionError` (one
    line) for a key left unconverted or a shape our model does not have.
    """
    state = load_d2_checkpoint(src)
    arch = d2_architecture(state, src)
    dataset = resolve_dataset(arch, dataset, src)
    out = convert_d2_state_dict(state, src, head_prefix(dataset))
    return finish_conversion(out, arch, source='d2', src=src, dst=dst,
                             config_out=config_out, dataset=dataset,
                             num_things=num_things, thing_ids=thing_ids)
