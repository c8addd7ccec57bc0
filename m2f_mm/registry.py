"""The ``m2f_mm`` registry scope.

Every registry here is a child of mmengine's root registry of the same kind, so
MMDetection (``default_scope='mmdet'``) and MMSegmentation
(``default_scope='mmseg'``) configs reach our parts as ``type='m2f_mm.X'``
after ``custom_imports=dict(imports=['m2f_mm'])``.

Our own code builds its nested parts with :func:`build`, which qualifies a bare
type name that we register (``'PointHungarianAssigner'``) as ``'m2f_mm.…'``:
mmengine builds inside the caller's default scope, where a bare name of ours
would not be found. Bare names we do not register (``'ResNet'``) keep resolving
in the caller's scope as usual.
"""
from typing import Any, Optional

from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry

SCOPE = 'm2f_mm'

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope=SCOPE, locations=['m2f_mm'])
TASK_UTILS = Registry(
    'task util', parent=MMENGINE_TASK_UTILS, scope=SCOPE,
    locations=['m2f_mm'])
TRANSFORMS = Registry(
    'transform', parent=MMENGINE_TRANSFORMS, scope=SCOPE,
    locations=['m2f_mm'])
DATASETS = Registry(
    'dataset', parent=MMENGINE_DATASETS, scope=SCOPE,
    locations=['m2f_mm'])
METRICS = Registry(
    'metric', parent=MMENGINE_METRICS, scope=SCOPE,
    locations=['m2f_mm'])
OPTIM_WRAPPERS = Registry(
    'optim wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope=SCOPE,
    locations=['m2f_mm'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor', parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    scope=SCOPE, locations=['m2f_mm'])
HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, scope=SCOPE, locations=['m2f_mm'])
LOOPS = Registry(
    'loop', parent=MMENGINE_LOOPS, scope=SCOPE, locations=['m2f_mm'])
VISUALIZERS = Registry(
    'visualizer', parent=MMENGINE_VISUALIZERS, scope=SCOPE,
    locations=['m2f_mm'])


def qualify(cfg: dict, registry: Registry) -> dict:
    """Return a copy of ``cfg`` whose bare ``type`` is scoped to m2f_mm when
    ``registry`` holds that name; other configs come back unchanged."""
    cfg = dict(cfg)
    t = cfg.get('type')
    if isinstance(t, str) and '.' not in t:
        registry.import_from_location()
        if t in registry.module_dict:
            cfg['type'] = f'{SCOPE}.{t}'
    return cfg


def build(cfg: Optional[dict], registry: Registry, **default_args: Any):
    """Build ``cfg`` from ``registry`` so that names of ours resolve whatever
    the caller's default scope is. ``None`` builds ``None``."""
    if cfg is None:
        return None
    return registry.build(qualify(cfg, registry), default_args=default_args or None)
