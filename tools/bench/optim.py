"""The optimizer of a benchmarked train step (``--optimizer``).

``plain``: one AdamW over all trained parameters, the same for every
implementation; no gradient clipping.

``config``: the optimizer each implementation's own config builds, as a
user's training gets it: mmengine's ``build_optim_wrapper`` from the
``optim_wrapper`` of ``configs/mask2former_r50_coco-panoptic.py`` (ours:
merged parameter groups) and of MMDetection's
``mask2former_r50_8xb2-lsj-50e_coco-panoptic.py`` (one group per parameter),
with their gradient clipping. Both configs set the same AdamW (1e-4, weight
decay 0.05, backbone lr x0.1, no decay on norms and embeddings, clipping at
0.01), with one difference: MMDet's custom key ``level_embed`` misses its
pixel decoder's ``level_encoding``, which keeps weight decay 0.05 there (the
same number of groups and ops either way). HF ships no training config: it
keeps the plain AdamW, without clipping.

Either way the AdamW is the multi-tensor (``foreach``) one CUDA picks by
default, on every device, unless a config asks for ``fused``: then the
top-level op count of a step on CPU (``--count-ops``) shows the kernels a
GPU launches.
"""
import os.path as osp
from typing import Optional, Tuple

import torch

from . import MMDET_CONFIG, OURS_CONFIG

OPTIMIZERS = ('plain', 'config')


def _config_optim_wrapper(name: str) -> dict:
    import mmdet
    from mmengine.config import Config
    path = (OURS_CONFIG if name == 'm2f_mm' else
            osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', MMDET_CONFIG))
    cfg = Config.fromfile(path).optim_wrapper.to_dict()
    optimizer = cfg['optimizer']
    if not optimizer.get('fused'):
        optimizer['foreach'] = True
    return cfg


def build_optimizer(name: str, model, mode: str = 'plain', lr: float = 1e-4
                    ) -> Tuple[torch.optim.Optimizer, Optional[dict]]:
    """(optimizer, gradient clipping kwargs or None) of implementation
    ``name`` for ``mode`` (see the module's docstring)."""
    if mode not in OPTIMIZERS:
        raise ValueError(f'--optimizer must be one of {OPTIMIZERS}, got {mode!r}')
    if mode == 'plain' or name == 'hf':
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.05, foreach=True), None
    from mmengine.optim import build_optim_wrapper

    from .models import quiet_mmengine
    with quiet_mmengine('ERROR'):  # mmengine warns once per frozen parameter
        wrapper = build_optim_wrapper(model, _config_optim_wrapper(name))
    return wrapper.optimizer, getattr(wrapper, 'clip_grad_kwargs', None) or None


def clip_gradients(optimizer, clip: Optional[dict], scaler=None) -> None:
    """The config's gradient clipping (L2 of all gradients), after
    unscaling them when a GradScaler scales the loss."""
    if not clip:
        return
    if scaler is not None:
        scaler.unscale_(optimizer)
    params = [p for g in optimizer.param_groups for p in g['params'] if p.grad is not None]
    torch.nn.utils.clip_grad_norm_(params, **clip)
