"""The three Mask2Formers with random weights: MMDet's, ours with MMDet's
weights converted, and HF's with its own ResNet of the same shape."""
import contextlib
import os.path as osp

import torch

from . import MMDET_CONFIG, NUM_STUFF, NUM_THINGS, OURS_CONFIG

# ``--cfg-options`` of tools/benchmark.py: keys of OUR model config (below
# ``model``) and their values, e.g. {'panoptic_head.pixel_decoder.with_cp': True}
OURS_OPTIONS = {}


def model_configs(small: bool = False):
    """(ours, MMDet's) model configs from the two config files, backbone
    init removed (random weights, nothing downloaded). ``small`` shrinks
    the models for smoke tests (ResNet-18, 64 channels, 10 queries)."""
    import mmdet
    from mmengine.config import Config
    mmdet_path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', MMDET_CONFIG)
    ours = Config.fromfile(OURS_CONFIG).model
    ref = Config.fromfile(mmdet_path).model
    for cfg in (ours, ref):
        cfg.backbone.init_cfg = None
        cfg.data_preprocessor.pop('batch_augments', None)
    if OURS_OPTIONS:
        merged = Config(dict(model=ours))
        merged.merge_from_dict({f'model.{k}': v for k, v in OURS_OPTIONS.items()})
        ours = merged.model
    if small:
        feat, queries, points, chans = 64, 10, 1024, [64, 128, 256, 512]
        for cfg in (ours, ref):
            cfg.backbone.depth = 18
            head = cfg.panoptic_head
            head.in_channels = chans
            head.feat_channels = feat
            head.num_queries = queries
            cfg.train_cfg.num_points = points
            cfg.test_cfg.max_per_image = 20
        ours.panoptic_head.mask_channels = ref.panoptic_head.out_channels = feat
        ours.panoptic_head.pixel_decoder.ffn_dims = 2 * feat
        ours.panoptic_head.transformer_decoder.ffn_dims = 4 * feat
        pd = ref.panoptic_head.pixel_decoder
        pd.encoder.layer_cfg.self_attn_cfg.embed_dims = feat
        pd.encoder.layer_cfg.ffn_cfg.update(embed_dims=feat, feedforward_channels=2 * feat)
        pd.positional_encoding.num_feats = feat // 2
        ref.panoptic_head.positional_encoding.num_feats = feat // 2
        layer = ref.panoptic_head.transformer_decoder.layer_cfg
        layer.self_attn_cfg.embed_dims = layer.cross_attn_cfg.embed_dims = feat
        layer.ffn_cfg.update(embed_dims=feat, feedforward_channels=4 * feat)
    return ours, ref


def _mmdet_scope():
    import m2f_mm  # noqa: F401  (registers our modules)
    from mmdet.utils import register_all_modules
    from mmengine.registry import init_default_scope
    register_all_modules(init_default_scope=False)
    init_default_scope('mmdet')


def build_mmdet_pair(seed: int = 0, small: bool = False, device: str = 'cpu'):
    """MMDet's Mask2Former (random init) and ours with its weights."""
    from mmdet.registry import MODELS
    from m2f_mm.converters import convert_mmdet_state_dict
    _mmdet_scope()
    ours_cfg, ref_cfg = model_configs(small)
    torch.manual_seed(seed)
    with quiet_mmengine():
        ref = MODELS.build(ref_cfg)
        ref.init_weights()
        ours = MODELS.build(ours_cfg)
    missing, unexpected = ours.load_state_dict(
        convert_mmdet_state_dict(ref.state_dict()), strict=False)
    if missing or unexpected:
        raise RuntimeError(f'weight conversion left missing={missing[:5]} '
                           f'unexpected={unexpected[:5]}')
    return ours.to(device), ref.to(device)


def build_ours(seed: int = 0, small: bool = False):
    """Our model alone, random init, in eval mode (MMDet's init of the same
    shape is not needed for the ONNX comparison)."""
    from mmdet.registry import MODELS
    _mmdet_scope()
    cfg, _ = model_configs(small)
    torch.manual_seed(seed)
    with quiet_mmengine():
        model = MODELS.build(cfg)
        model.init_weights()
    return model.eval()


def hf_available() -> bool:
    try:
        import transformers  # noqa: F401
        from transformers import Mask2FormerForUniversalSegmentation  # noqa: F401
        return True
    except Exception:
        return False


def build_hf(seed: int = 0, small: bool = False, device: str = 'cpu'):
    """HF's Mask2Former with its own ResNet-50 (random init), the same
    sizes, points and loss weights."""
    from transformers import (Mask2FormerConfig, Mask2FormerForUniversalSegmentation,
                              ResNetConfig)
    backbone = ResNetConfig(
        depths=[2, 2, 2, 2] if small else [3, 4, 6, 3],
        hidden_sizes=[64, 128, 256, 512] if small else [256, 512, 1024, 2048],
        layer_type='basic' if small else 'bottleneck',
        out_features=['stage1', 'stage2', 'stage3', 'stage4'])
    feat = 64 if small else 256
    cfg = Mask2FormerConfig(
        backbone_config=backbone, num_labels=NUM_THINGS + NUM_STUFF,
        num_queries=10 if small else 100, decoder_layers=10,  # 9 + the query set
        encoder_layers=6, hidden_dim=feat, feature_size=feat, mask_feature_size=feat,
        encoder_feedforward_dim=2 * feat if small else 1024,
        dim_feedforward=4 * feat if small else 2048,
        train_num_points=1024 if small else 12544, oversample_ratio=3.0,
        importance_sample_ratio=0.75, class_weight=2.0, mask_weight=5.0,
        dice_weight=5.0, no_object_weight=0.1, use_auxiliary_loss=True)
    torch.manual_seed(seed)
    return Mask2FormerForUniversalSegmentation(cfg).to(device)


@contextlib.contextmanager
def quiet_mmengine(level: str = 'WARNING'):
    """mmengine logs every parameter's init at INFO: ``level`` and above
    only here."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    saved = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(saved)
