"""Mixed-precision training where mmengine's ``AmpOptimWrapper`` does not
go: the CPU (mmengine 0.10 refuses it: "only available training on gpu, npu,
mlu or musa").

bfloat16 has float32's exponent range, so its gradients neither underflow
nor overflow where float32's would not, and it needs no loss scaling: the
wrapper only runs the forward (and the loss) under ``torch.autocast``.
:func:`amp_optim_wrapper_cfg` picks this wrapper for bfloat16 (on CPU, and on
CUDA with ``--amp-dtype bfloat16``) and mmengine's, with dynamic loss
scaling, for float16; tools/train.py ``--amp`` uses it.
"""
from contextlib import contextmanager
from typing import Optional

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from m2f_mm.registry import OPTIM_WRAPPERS

DTYPES = {'bfloat16': torch.bfloat16, 'bf16': torch.bfloat16,
          'float16': torch.float16, 'fp16': torch.float16}


def _dtype(name) -> torch.dtype:
    if isinstance(name, torch.dtype):
        return name
    if name not in DTYPES:
        raise ValueError(f'unknown autocast dtype {name!r}; use one of {sorted(DTYPES)}')
    return DTYPES[name]


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs under ``torch.autocast`` on the
    model's device, without loss scaling.

    Args:
        dtype: ``'bfloat16'`` (default). float16 needs loss scaling: use
            mmengine's ``AmpOptimWrapper`` for it (CUDA).
        **kwargs: those of mmengine's ``OptimWrapper`` (optimizer,
            accumulative_counts, clip_grad).
    """

    def __init__(self, dtype='bfloat16', **kwargs) -> None:
        super().__init__(**kwargs)
        self.cast_dtype = _dtype(dtype)
        if self.cast_dtype != torch.bfloat16:
            raise ValueError('AutocastOptimWrapper runs bfloat16 only: float16 '
                             "needs loss scaling (mmengine's AmpOptimWrapper, CUDA)")

    @contextmanager
    def optim_context(self, model: nn.Module):
        device = next(model.parameters()).device.type
        with super().optim_context(model), torch.autocast(device, dtype=self.cast_dtype):
            yield


def amp_optim_wrapper_cfg(optim_wrapper: dict, device: str,
                          dtype: Optional[str] = None) -> dict:
    """``optim_wrapper`` (a config dict) turned into mixed precision on
    ``device``: bfloat16 (the CPU's only choice, ``dtype='bfloat16'``
    elsewhere) through :class:`AutocastOptimWrapper`, without loss scaling;
    float16 (the default on accelerators) through mmengine's
    ``AmpOptimWrapper`` with dynamic loss scaling. A config that already
    asks for ``AmpOptimWrapper`` gets the bfloat16 wrapper on CPU."""
    cfg = dict(optim_wrapper)
    if device == 'cpu' and dtype is not None and _dtype(dtype) != torch.bfloat16:
        raise ValueError(f'mixed precision on CPU runs bfloat16 only, not {dtype}')
    given = dtype if dtype is not None else cfg.get('dtype')
    if device == 'cpu' or (given is not None and _dtype(given) == torch.bfloat16):
        # bfloat16 has float32's range: no loss scale, on any device
        cfg.pop('loss_scale', None)
        cfg.pop('use_fsdp', None)
        cfg.update(type='m2f_mm.AutocastOptimWrapper', dtype='bfloat16')
    else:
        cfg['type'] = 'AmpOptimWrapper'
        cfg.setdefault('loss_scale', 'dynamic')
        cfg['dtype'] = 'float16'
    return cfg
