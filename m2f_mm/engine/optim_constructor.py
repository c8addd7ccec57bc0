"""An optimizer with one parameter group per distinct setting, not one per
parameter.

mmengine's ``DefaultOptimWrapperConstructor`` gives every parameter its own
group as soon as a config has a ``paramwise_cfg`` (Mask2Former's has: the
backbone's learning rate x0.1, no weight decay on norms and embeddings). A
multi-tensor (``foreach``) or fused optimizer works one group at a time, so
on CUDA AdamW then launches about a dozen kernels per parameter: some 5,000
for an R-50 Mask2Former, as many as the model's own forward and backward.
:class:`GroupedOptimWrapperConstructor` builds the same groups and then
merges those whose settings (after the optimizer's defaults) are equal: every
parameter keeps its learning rate and weight decay, the update is the same,
and the R-50 model steps in 5 groups.

A checkpoint written with one group per parameter (mmengine's constructor,
or MMDetection's Mask2Former) still resumes: a ``load_state_dict`` pre-hook
maps its per-parameter state onto the merged groups.
"""
import logging
from typing import Dict, List, Tuple

import torch
from mmengine.logging import MMLogger, print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper

from m2f_mm.registry import OPTIM_WRAPPER_CONSTRUCTORS

class _DropPerParamLines(logging.Filter):
    """Drops mmengine's log lines per parameter: one per setting, and a
    warning per frozen parameter (counted instead)."""

    def __init__(self):
        super().__init__()
        self.frozen = 0

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        if msg.endswith('is skipped since its requires_grad=False'):
            self.frozen += 1
            return False
        return not msg.startswith('paramwise_options -- ')


def _setting_key(group: dict) -> Tuple:
    """The settings of a group (all but its parameters), hashable."""
    items = []
    for k in sorted(k for k in group if k != 'params'):
        v = group[k]
        if isinstance(v, torch.Tensor):
            v = ('tensor', v.tolist())
        elif isinstance(v, list):
            v = tuple(v)
        items.append((k, v))
    return tuple(items)


def merge_param_groups(groups: List[dict]) -> Tuple[List[dict], List[int]]:
    """Groups with equal settings merged, in the order each setting first
    appears; and, for each parameter of the merged groups in order, its
    position among the parameters of ``groups``."""
    merged: Dict[Tuple, dict] = {}
    origin: Dict[Tuple, List[int]] = {}
    flat = 0
    for group in groups:
        key = _setting_key(group)
        if key not in merged:
            merged[key] = {k: v for k, v in group.items() if k != 'params'}
            merged[key]['params'] = []
            origin[key] = []
        merged[key]['params'].extend(group['params'])
        origin[key].extend(range(flat, flat + len(group['params'])))
        flat += len(group['params'])
    order = [i for key in merged for i in origin[key]]
    return list(merged.values()), order


def _per_param_pre_hook(group_sizes: List[int], order: List[int]):
    """A ``load_state_dict`` pre-hook that turns a state dict saved with the
    groups before merging (one per parameter) into the merged layout; any
    other state dict passes unchanged."""
    def hook(optimizer, state_dict):
        saved = state_dict['param_groups']
        if ([len(g['params']) for g in saved] != group_sizes
                or len(saved) == len(optimizer.param_groups)):
            return None
        flat_ids = [i for g in saved for i in g['params']]
        owner = [g for g in saved for _ in g['params']]
        state = state_dict['state']
        new_groups, new_state, new_id = [], {}, 0
        for group in optimizer.param_groups:
            first = owner[order[new_id]]
            ids = []
            for _ in group['params']:
                old_id = flat_ids[order[new_id]]
                if old_id in state:
                    new_state[new_id] = state[old_id]
                ids.append(new_id)
                new_id += 1
            new_groups.append({**first, 'params': ids})
        print_log(f'optimizer state saved in {len(saved)} parameter groups '
                  f'loaded into {len(new_groups)} merged ones', logger='current')
        return {'state': new_state, 'param_groups': new_groups}
    return hook


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class GroupedOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's constructor (same ``paramwise_cfg``), with the parameter
    groups of equal settings merged (see the module's docstring).

    Use: ``optim_wrapper = dict(constructor='m2f_mm.GroupedOptimWrapperConstructor',
    optimizer=..., paramwise_cfg=...)``. It logs one line per merged group
    instead of mmengine's line per parameter.
    """

    def __call__(self, model: torch.nn.Module) -> OptimWrapper:
        logger = MMLogger.get_current_instance()
        quiet = _DropPerParamLines()
        logger.addFilter(quiet)
        try:
            wrapper = super().__call__(model)
        finally:
            logger.removeFilter(quiet)
        optimizer = wrapper.optimizer
        before = optimizer.param_groups
        merged, order = merge_param_groups(before)
        optimizer.param_groups = merged
        optimizer.register_load_state_dict_pre_hook(
            _per_param_pre_hook([len(g['params']) for g in before], order))
        names = {id(p): n for n, p in getattr(model, 'module', model).named_parameters()}
        kind = type(optimizer).__name__ + (
            ' (fused)' if optimizer.defaults.get('fused') else
            ' (foreach)' if optimizer.defaults.get('foreach') else '')
        print_log(f'{kind}: {len(before)} parameter groups merged into {len(merged)}'
                  + (f'; {quiet.frozen} frozen parameters (requires_grad=False) '
                     'left out' if quiet.frozen else ''), logger='current')
        for group in merged:
            first = names.get(id(group['params'][0]), '?')
            setting = ', '.join(f'{k}={group[k]}' for k in ('lr', 'weight_decay')
                                if k in group)
            print_log(f'parameter group: {len(group["params"])} tensors '
                      f'(first {first}): {setting}', logger='current')
        return wrapper
