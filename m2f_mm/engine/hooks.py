"""Runner hooks of m2f_mm."""
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
