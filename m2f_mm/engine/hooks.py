"""Runner hooks of m2f_mm."""
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log

from m2f_mm.registry import HOOKS
from .optim_constructor import merge_scheduler_states


@HOOKS.register_module()
class MergedGroupsResumeHook(Hook):
    """Resuming a checkpoint saved with one parameter group per parameter
    (mmengine's constructor) into :class:`GroupedOptimWrapperConstructor`'s
    merged groups: the param schedulers' per-group values (``base_values``,
    which e.g. ``CosineAnnealingLR(eta_min_ratio=...)`` steps from) are put
    in the merged layout before the Runner loads them. The optimizer state
    itself is mapped by the optimizer (a ``load_state_dict`` pre-hook).
    Works under any Runner: mmengine calls ``after_load_checkpoint`` on the
    checkpoint it then resumes from."""

    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        optimizer = getattr(runner.optim_wrapper, 'optimizer', None)
        if optimizer is not None and merge_scheduler_states(checkpoint, optimizer):
            print_log('param scheduler states saved with one parameter group per '
                      'parameter put in the merged groups', logger='current')


@HOOKS.register_module()
class LogVarsToHostHook(Hook):
    """Brings a train step's log variables (the losses) from the GPU in one
    copy, before mmengine's ``RuntimeInfoHook`` turns each into a number
    with its own ``.item()``: one host synchronisation per iteration
    instead of one per loss term (31 for Mask2Former). The values stay
    0-d tensors, on the CPU, so hooks that test them as tensors (e.g.
    MMDet's ``CheckInvalidLossHook``) work unchanged, with their dtypes.
    Log variables that are not one-element floating-point tensors are left
    as they are."""

    priority = 'HIGHEST'  # before RuntimeInfoHook (VERY_HIGH)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if not outputs:
            return
        by_device = {}
        for key, value in outputs.items():
            if isinstance(value, torch.Tensor) and value.numel() == 1 \
                    and value.is_floating_point():
                by_device.setdefault(value.device, []).append(key)
        for keys in by_device.values():  # one copy per device (one in all)
            # in float64, which holds every float dtype's values exactly
            values = torch.stack([outputs[k].detach().reshape(()).double()
                                  for k in keys]).cpu()
            for key, value in zip(keys, values.unbind()):
                outputs[key] = value.to(outputs[key].dtype)
