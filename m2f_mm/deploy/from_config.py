"""The model to deploy, built from a config and filled from a checkpoint by
the tools' one loader (:func:`m2f_mm.utils.checkpoint.load_into`); used by
tools/export_onnx.py and tools/analyze_things.py."""
import copy
from typing import Optional

from ..utils.checkpoint import PARTIAL_KEY, load_into


def default_task(cfg) -> str:
    """'semantic' for an MMSegmentation config, else 'panoptic' when the
    model's test_cfg switches panoptic results on, else 'instance'."""
    if cfg.get('default_scope') == 'mmseg':
        return 'semantic'
    test_cfg = cfg.model.get('test_cfg') or {}
    return 'panoptic' if test_cfg.get('panoptic_on', True) else 'instance'


def build_model_from_config(config, checkpoint: Optional[str] = None):
    """(model in eval mode, Config) from a config and an optional checkpoint,
    in the config's default scope.

    The backbone's pretrained init is dropped (the checkpoint holds the
    weights). A checkpoint that cannot be read or does not cover the model
    raises a one-line :class:`~m2f_mm.utils.errors.CheckpointError`, unless
    the config sets ``load_partial=True``. The model's ``dataset_meta`` comes
    from the checkpoint, else the config's ``metainfo``.

    Args:
        config: a config file or a ``Config``.
        checkpoint: a local checkpoint file; None leaves the model as
            initialised.
    """
    import m2f_mm  # noqa: F401  (registers the m2f_mm scope)
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.pop('pretrained', None)
    if model_cfg.get('backbone', {}).get('init_cfg') is not None:
        model_cfg.backbone.init_cfg = None
    model = MODELS.build(model_cfg)
    dataset_meta = None
    if checkpoint:
        ckpt = load_into(model, checkpoint, partial=bool(cfg.get(PARTIAL_KEY, False)))
        dataset_meta = ckpt.get('meta', {}).get('dataset_meta')
    model.dataset_meta = dict(dataset_meta or cfg.get('metainfo') or {})
    return model.eval(), cfg
