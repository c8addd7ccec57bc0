"""Hugging Face ``Mask2FormerForUniversalSegmentation`` checkpoints in our layout.

Source: a ``save_pretrained`` folder (``config.json`` and
``model.safetensors`` / ``pytorch_model.bin``, possibly sharded) with
``model.pixel_level_module.encoder.*`` (the backbone: HF's Swin or ResNet),
``model.pixel_level_module.decoder.*`` (pixel decoder),
``model.transformer_module.*`` (masked-attention decoder),
``class_predictor.*`` and ``criterion.empty_weight``.

Both namings of HF's Swin are read: the one on the hub and in files that
``save_pretrained`` writes (``attention.self.query``, ``intermediate.dense``,
``encoder.layers...``) and the module names of transformers 5
(``q_proj``, ``mlp.fc1``, ``swin.encoder.layers...``).

Numerical notes:
- HF's Swin keeps query, key and value apart; MMDet packs them (``qkv``).
- HF's PatchMerging concatenates the 2×2 neighbours in the original Swin's
  order; MMDet's uses ``nn.Unfold`` order: the norm and the reduction's
  input channels are permuted (as for detectron2).
- MMDet keeps ``relative_position_index`` as a buffer; HF 5 does not save
  it (older files do, and that copy is dropped): it is rebuilt from the
  size of the bias table.
- HF's decoder self-attention has separate q/k/v projections; ours packs
  them as ``nn.MultiheadAttention`` does (``in_proj_weight``).
- HF's ResNet stores BN counters; MMDet's BN has the same buffers.
- The unused final norm of HF's ``SwinModel`` (``swin.layernorm``, not on the
  path of ``SwinBackbone``) is dropped.

This module holds the key rules; reading the folder and its ``config.json``
is in :mod:`.hf_folder`.
"""
from collections import OrderedDict
from typing import Dict, List, Optional

from torch import Tensor

from .arch import finish_conversion, head_prefix, resolve_dataset
from .backbones import merge_norm_to_unfold, merge_reduction_to_unfold, table_with_index
from .common import Pack, Rule, apply_rules
from .hf_folder import hf_architecture, load_hf_folder  # noqa: F401 (read from here too)

H = 'panoptic_head.'
ENC = r'model\.pixel_level_module\.encoder\.'
SW = ENC + r'(?:swin\.)?'  # transformers 5 nests the Swin model under swin.
BLK = SW + r'encoder\.layers\.(\d+)\.blocks\.(\d+)\.'
STAGE = r'backbone.stages.\1.blocks.\2.'
RES = ENC + r'encoder\.stages\.(\d+)\.layers\.(\d+)\.'
PD = r'model\.pixel_level_module\.decoder\.'
TM = r'model\.transformer_module\.'
DL = TM + r'decoder\.layers\.(\d+)\.'
OURS_DL = H + r'transformer_decoder.layers.\1.'
BN = r'(weight|bias|running_mean|running_var|num_batches_tracked)'


def _res_block(m) -> str:
    """HF ResNet stage i, layer j -> MMDet ``layer{i+1}.{j}``."""
    return f'backbone.layer{int(m[1]) + 1}.{m[2]}'


HF_RULES: List[Rule] = [
    # ---- HF Swin -> MMDet SwinTransformer
    (SW + r'embeddings\.patch_embeddings\.projection\.(weight|bias)',
     r'backbone.patch_embed.projection.\1', None),
    (SW + r'embeddings\.norm\.(weight|bias)', r'backbone.patch_embed.norm.\1', None),
    (BLK + r'layernorm_before\.(weight|bias)', STAGE + r'norm1.\3', None),
    (BLK + r'layernorm_after\.(weight|bias)', STAGE + r'norm2.\3', None),
    (BLK + r'attention\.self\.(?P<part>query|key|value)\.(?P<leaf>weight|bias)',
     STAGE + r'attn.w_msa.qkv.\g<leaf>', Pack('query', 'key', 'value')),
    (BLK + r'attention\.(?P<part>q|k|v)_proj\.(?P<leaf>weight|bias)',
     STAGE + r'attn.w_msa.qkv.\g<leaf>', Pack('q', 'k', 'v')),
    (BLK + r'attention\.(?:self|relative_position_bias)\.relative_position_bias_table',
     (STAGE + 'attn.w_msa.relative_position_bias_table',
      STAGE + 'attn.w_msa.relative_position_index'), table_with_index),
    (BLK + r'attention\.(?:self|relative_position_bias)\.relative_position_index', None, None),
    (BLK + r'attention\.(?:output\.dense|o_proj)\.(weight|bias)', STAGE + r'attn.w_msa.proj.\3',
     None),
    (BLK + r'(?:intermediate\.dense|mlp\.fc1)\.(weight|bias)', STAGE + r'ffn.layers.0.0.\3', None),
    (BLK + r'(?:output\.dense|mlp\.fc2)\.(weight|bias)', STAGE + r'ffn.layers.1.\3', None),
    (SW + r'encoder\.layers\.(\d+)\.downsample\.reduction\.weight',
     r'backbone.stages.\1.downsample.reduction.weight', merge_reduction_to_unfold),
    (SW + r'encoder\.layers\.(\d+)\.downsample\.norm\.(weight|bias)',
     r'backbone.stages.\1.downsample.norm.\2', merge_norm_to_unfold),
    (ENC + r'hidden_states_norms\.stage([1-4])\.(weight|bias)',
     lambda m: f'backbone.norm{int(m[1]) - 1}.{m[2]}', None),
    (SW + r'layernorm\.(weight|bias)', None, None),
    # ---- HF ResNet -> MMDet ResNet (BN buffers, counters included)
    (ENC + r'embedder\.embedder\.convolution\.weight', 'backbone.conv1.weight', None),
    (ENC + r'embedder\.embedder\.normalization\.' + BN, r'backbone.bn1.\1', None),
    (RES + r'shortcut\.convolution\.weight',
     lambda m: _res_block(m) + '.downsample.0.weight', None),
    (RES + r'shortcut\.normalization\.' + BN,
     lambda m: _res_block(m) + f'.downsample.1.{m[3]}', None),
    (RES + r'layer\.([0-2])\.convolution\.weight',
     lambda m: _res_block(m) + f'.conv{int(m[3]) + 1}.weight', None),
    (RES + r'layer\.([0-2])\.normalization\.' + BN,
     lambda m: _res_block(m) + f'.bn{int(m[3]) + 1}.{m[4]}', None),
    # ---- pixel decoder; one FPN level (1/4)
    (PD + r'input_projections\.(\d+)\.0\.(weight|bias)',
     H + r'pixel_decoder.input_projs.\1.conv.\2', None),
    (PD + r'input_projections\.(\d+)\.1\.(weight|bias)',
     H + r'pixel_decoder.input_projs.\1.gn.\2', None),
    (PD + r'level_embed', H + 'pixel_decoder.level_embed.weight', None),
    (PD + r'encoder\.layers\.(\d+)\.self_attn\.(sampling_offsets|attention_weights|'
     r'value_proj|output_proj)\.(weight|bias)', H + r'pixel_decoder.layers.\1.self_attn.\2.\3',
     None),
    (PD + r'encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)',
     H + r'pixel_decoder.layers.\1.norm1.\2', None),
    (PD + r'encoder\.layers\.(\d+)\.fc1\.(weight|bias)', H + r'pixel_decoder.layers.\1.linear1.\2',
     None),
    (PD + r'encoder\.layers\.(\d+)\.fc2\.(weight|bias)', H + r'pixel_decoder.layers.\1.linear2.\2',
     None),
    (PD + r'encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)',
     H + r'pixel_decoder.layers.\1.norm2.\2', None),
    (PD + r'adapter_1\.0\.weight', H + 'pixel_decoder.lateral_convs.0.conv.weight', None),
    (PD + r'adapter_1\.1\.(weight|bias)', H + r'pixel_decoder.lateral_convs.0.gn.\1', None),
    (PD + r'layer_1\.0\.weight', H + 'pixel_decoder.output_convs.0.conv.weight', None),
    (PD + r'layer_1\.1\.(weight|bias)', H + r'pixel_decoder.output_convs.0.gn.\1', None),
    (PD + r'mask_projection\.(weight|bias)', H + r'pixel_decoder.mask_feature.\1', None),
    # ---- masked-attention decoder
    (DL + r'self_attn\.(?P<part>q|k|v)_proj\.(?P<leaf>weight|bias)',
     OURS_DL + r'self_attn.in_proj_\g<leaf>', Pack('q', 'k', 'v')),
    (DL + r'self_attn\.out_proj\.(weight|bias)', OURS_DL + r'self_attn.out_proj.\2', None),
    (DL + r'self_attn_layer_norm\.(weight|bias)', OURS_DL + r'norm_self.\2', None),
    (DL + r'cross_attn\.(in_proj_weight|in_proj_bias|out_proj\.weight|out_proj\.bias)',
     OURS_DL + r'cross_attn.\2', None),
    (DL + r'cross_attn_layer_norm\.(weight|bias)', OURS_DL + r'norm_cross.\2', None),
    (DL + r'fc1\.(weight|bias)', OURS_DL + r'linear1.\2', None),
    (DL + r'fc2\.(weight|bias)', OURS_DL + r'linear2.\2', None),
    (DL + r'final_layer_norm\.(weight|bias)', OURS_DL + r'norm_ffn.\2', None),
    (TM + r'decoder\.layernorm\.(weight|bias)', H + r'transformer_decoder.post_norm.\1', None),
    (TM + r'decoder\.mask_predictor\.mask_embedder\.([0-2])\.0\.(weight|bias)',
     lambda m: f'{H}transformer_decoder.mask_embed.{2 * int(m[1])}.{m[2]}', None),
    (TM + r'queries_embedder\.weight', H + 'transformer_decoder.query_embed.weight', None),
    (TM + r'queries_features\.weight', H + 'transformer_decoder.query_feat.weight', None),
    (TM + r'level_embed\.weight', H + 'transformer_decoder.level_embed.weight', None),
    (TM + r'input_projections\.(\d+)\.(weight|bias)', H + r'transformer_decoder.input_projs.\1.\2',
     None),
    (r'class_predictor\.(weight|bias)', H + r'transformer_decoder.cls_embed.\1', None),
    # the no-object weight goes into the config (class_weight), not the weights
    (r'criterion\.empty_weight', None, None),
]


def convert_hf_state_dict(state: Dict[str, Tensor], where: str = 'checkpoint',
                          head_prefix: str = H) -> 'OrderedDict[str, Tensor]':
    """An HF Mask2Former state dict in our layout, the head under
    ``head_prefix``; one-line :class:`ConversionError` for keys no rule
    converts."""
    out = apply_rules(state, HF_RULES, where)
    if head_prefix != H:
        out = OrderedDict((head_prefix + k[len(H):] if k.startswith(H) else k, v)
                          for k, v in out.items())
    return out


def convert_hf_checkpoint(src: str, dst: str, config_out: Optional[str] = None,
                          dataset: Optional[str] = None,
                          num_things: Optional[int] = None,
                          thing_ids: Optional[List[int]] = None) -> dict:
    """A ``save_pretrained`` folder → our checkpoint at ``dst`` and, with
    ``config_out``, a config that builds its model (class names from
    ``id2label``). ``dataset`` / ``num_things`` as for
    :func:`m2f_mm.converters.d2.convert_d2_checkpoint`."""
    config, state = load_hf_folder(src)
    arch = hf_architecture(config, state, src, folder=src)
    dataset = resolve_dataset(arch, dataset, src)
    out = convert_hf_state_dict(state, src, head_prefix(dataset))
    return finish_conversion(out, arch, source='hf', src=src, dst=dst,
                             config_out=config_out, dataset=dataset,
                             num_things=num_things, thing_ids=thing_ids)
