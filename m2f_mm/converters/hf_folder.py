"""What a Hugging Face ``save_pretrained`` folder of
``Mask2FormerForUniversalSegmentation`` holds, for :mod:`.hf`: its weights
(safetensors, else ``pytorch_model*.bin`` through the tools' checkpoint
loader), the architecture its ``config.json`` states (:func:`hf_architecture`)
and the input normalisation of ``preprocessor_config.json``."""
import glob
import json
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

from torch import Tensor

from .arch import Arch
from .backbones import resnet_config, swin_config
from .loading import ConversionError, load_safetensors, load_torch_weights


def load_hf_folder(folder: str) -> Tuple[dict, 'OrderedDict[str, Tensor]']:
    """``config.json`` and every weight file of a ``save_pretrained`` folder
    (safetensors preferred; ``.bin`` with ``weights_only=True``)."""
    if not os.path.isdir(folder):
        raise ConversionError(f'{folder}: not a folder (expected a save_pretrained '
                              'directory with config.json)')
    cfg_path = os.path.join(folder, 'config.json')
    if not os.path.isfile(cfg_path):
        raise ConversionError(f'{folder}: no config.json')
    with open(cfg_path, encoding='utf-8') as f:
        config = json.load(f)
    if config.get('model_type') != 'mask2former':
        raise ConversionError(f'{cfg_path}: model_type is {config.get("model_type")!r}, '
                              'expected mask2former')
    files = sorted(glob.glob(os.path.join(folder, '*.safetensors')))
    loader = load_safetensors
    if not files:
        files = sorted(glob.glob(os.path.join(folder, 'pytorch_model*.bin')))
        loader = load_torch_weights
    if not files:
        raise ConversionError(f'{folder}: no *.safetensors or pytorch_model*.bin')
    state: 'OrderedDict[str, Tensor]' = OrderedDict()
    for path in files:
        part = loader(path)
        if not isinstance(part, dict):
            raise ConversionError(f'{path}: expected a state dict, got {type(part).__name__}')
        state.update(part)
    return config, state


def _preprocessing(folder: str) -> Tuple[List[float], List[float]]:
    """Mean/std in 0-255 from ``preprocessor_config.json`` when the folder has
    one; otherwise the ImageNet values HF's Mask2Former processor uses."""
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    path = os.path.join(folder, 'preprocessor_config.json')
    if os.path.isfile(path):
        with open(path, encoding='utf-8') as f:
            pre = json.load(f)
        scale = 255.0 if pre.get('do_rescale', True) else 1.0
        if pre.get('do_normalize', True) and 'image_mean' in pre and 'image_std' in pre:
            mean = [round(v * scale, 6) for v in pre['image_mean']]
            std = [round(v * scale, 6) for v in pre['image_std']]
    return mean, std


def _need(config: dict, key: str, where: str):
    if key not in config:
        raise ConversionError(f'{where}: config.json has no {key!r}')
    return config[key]


def hf_architecture(config: dict, state: Dict[str, Tensor], where: str,
                    folder: Optional[str] = None) -> Arch:
    """Widths and depths from ``config.json`` (cross-checked by the shapes
    the converted weights must have when the model is built)."""
    bb = config.get('backbone_config')
    if config.get('use_timm_backbone') or not isinstance(bb, dict):
        raise ConversionError(f'{where}: only HF Swin and ResNet backbones given as '
                              'backbone_config are supported (not timm or a named backbone)')
    if config.get('pre_norm'):
        raise ConversionError(f'{where}: pre_norm decoders are not supported')
    if config.get('activation_function', 'relu') != 'relu':
        raise ConversionError(f'{where}: decoder activation '
                              f'{config["activation_function"]!r} is not relu')
    outs = bb.get('out_features') or []
    if outs and outs != ['stage1', 'stage2', 'stage3', 'stage4']:
        raise ConversionError(f'{where}: backbone out_features {outs}; expected the 4 stages')
    kind = bb.get('model_type')
    if kind == 'swin':
        if bb.get('use_absolute_embeddings'):
            raise ConversionError(f'{where}: Swin with absolute position embeddings is '
                                  'not supported')
        if bb.get('hidden_act', 'gelu') != 'gelu' or \
                abs(bb.get('layer_norm_eps', 1e-5) - 1e-5) > 1e-12:
            raise ConversionError(f'{where}: Swin with hidden_act {bb.get("hidden_act")!r} '
                                  f'and layer_norm_eps {bb.get("layer_norm_eps")} differs '
                                  'from MMDet\'s (gelu, 1e-5)')
        backbone = swin_config(
            embed_dims=_need(bb, 'embed_dim', where), patch_size=bb.get('patch_size', 4),
            depths=_need(bb, 'depths', where), num_heads=_need(bb, 'num_heads', where),
            window_size=_need(bb, 'window_size', where),
            mlp_ratio=bb.get('mlp_ratio', 4.0), qkv_bias=bb.get('qkv_bias', True),
            pretrain_img_size=bb.get('image_size', 224))
    elif kind == 'resnet':
        if bb.get('downsample_in_first_stage'):
            raise ConversionError(f'{where}: ResNet with a strided first stage is not '
                                  'MMDet\'s ResNet')
        if bb.get('hidden_act', 'relu') != 'relu':
            raise ConversionError(f'{where}: ResNet activation {bb["hidden_act"]!r} is not relu')
        bottleneck = bb.get('layer_type', 'bottleneck') == 'bottleneck'
        sizes = _need(bb, 'hidden_sizes', where)
        base = sizes[0] // (4 if bottleneck else 1)
        expected = [base * (4 if bottleneck else 1) * 2 ** i for i in range(4)]
        if list(sizes) != expected:
            raise ConversionError(f'{where}: ResNet widths {sizes} do not double per stage '
                                  f'from {sizes[0]} (MMDet\'s ResNet needs {expected})')
        backbone = resnet_config(_need(bb, 'depths', where), bb.get('embedding_size', 64),
                                 base, bottleneck=bottleneck,
                                 stride_in_1x1=bb.get('downsample_in_bottleneck', False),
                                 where=where)
    else:
        raise ConversionError(f'{where}: backbone {kind!r} has no MMDet/MMSeg counterpart '
                              'here (supported: swin, resnet)')

    feat, hidden = _need(config, 'feature_size', where), _need(config, 'hidden_dim', where)
    if feat != hidden:
        raise ConversionError(f'{where}: feature_size {feat} differs from hidden_dim {hidden}; '
                              'not supported')
    if config.get('common_stride', 4) != 4 or \
            list(config.get('feature_strides', [4, 8, 16, 32])) != [4, 8, 16, 32]:
        raise ConversionError(f'{where}: strides other than 4/8/16/32 with a 1/4 mask are '
                              'not supported')
    id2label = config.get('id2label') or {}
    names = [id2label[k] for k in sorted(id2label, key=int)] if id2label else None
    num_classes = len(names) if names else _need(config, 'num_labels', where)
    in_channels = ([bb['embed_dim'] * 2 ** i for i in range(4)] if kind == 'swin'
                   else list(bb['hidden_sizes']))
    stored = state.get('criterion.empty_weight')
    weights = (stored.tolist() if stored is not None and not stored.is_meta
               else [1.0] * num_classes + [float(config.get('no_object_weight', 0.1))])
    mean, std = _preprocessing(folder) if folder else ([123.675, 116.28, 103.53],
                                                       [58.395, 57.12, 57.375])
    return Arch(
        backbone=backbone, in_channels=in_channels, feat_channels=feat,
        mask_channels=_need(config, 'mask_feature_size', where),
        num_queries=_need(config, 'num_queries', where), num_classes=num_classes,
        enc_layers=_need(config, 'encoder_layers', where),
        enc_heads=_need(config, 'num_attention_heads', where), enc_points=4,
        enc_ffn=_need(config, 'encoder_feedforward_dim', where), enc_levels=3,
        # HF counts the prediction from the learnable queries as a layer
        dec_layers=_need(config, 'decoder_layers', where) - 1,
        dec_heads=config['num_attention_heads'],
        dec_ffn=_need(config, 'dim_feedforward', where),
        enforce_input_project=any(k.startswith('model.transformer_module.input_projections.')
                                  for k in state),
        class_weight=weights, mean=mean, std=std, bgr_to_rgb=True, class_names=names)
