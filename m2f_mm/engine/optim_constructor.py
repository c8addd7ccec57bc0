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
and the R-50 model steps in 4 groups.

A checkpoint written with mmengine's constructor (one group per parameter)
of the same model still resumes: a ``load_state_dict`` pre-hook maps its
per-parameter state onto the merged groups, and
:class:`~m2f_mm.engine.MergedGroupsResumeHook` (in our configs'
``custom_hooks``) does the same for the param schedulers' per-group values.
"""
import logging
from typing import Dict, List, Tuple

import torch
from mmengine.logging import MMLogger, print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper

from m2f_mm.registry import OPTIM_WRAPPER_CONSTRUCTORS

# a group's implementation, not a setting: kept from the optimizer as built
# when a checkpoint's groups are loaded into it
IMPLEMENTATION = ('foreach', 'fused', 'capturable', 'differentiable')


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


def _hashable(value):
    """``value`` as something hashable that compares as it does."""
    if isinstance(value, torch.Tensor):
        return ('tensor', str(value.dtype), _hashable(value.tolist()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__,) + tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return ('dict',) + tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    try:
        hash(value)
    except TypeError:
        return ('repr', repr(value))
    return value


def _setting_key(group: dict) -> Tuple:
    """The settings of a group (all but its parameters), hashable."""
    return tuple((k, _hashable(group[k])) for k in sorted(group) if k != 'params')


def merge_param_groups(groups: List[dict]) -> Tuple[List[dict], List[int], List[int]]:
    """Groups with equal settings merged, in the order each setting first
    appears; for each parameter of the merged groups in order, its position
    among the parameters of ``groups``; and for each merged group, the
    index in ``groups`` of the first group merged into it."""
    merged: Dict[Tuple, dict] = {}
    origin: Dict[Tuple, List[int]] = {}
    firsts: List[int] = []
    flat = 0
    for index, group in enumerate(groups):
        key = _setting_key(group)
        if key not in merged:
            merged[key] = {k: v for k, v in group.items() if k != 'params'}
            merged[key]['params'] = []
            origin[key] = []
            firsts.append(index)
        merged[key]['params'].extend(group['params'])
        origin[key].extend(range(flat, flat + len(group['params'])))
        flat += len(group['params'])
    order = [i for key in merged for i in origin[key]]
    return list(merged.values()), order, firsts


def _per_param_pre_hook(group_sizes: List[int], order: List[int]):
    """A ``load_state_dict`` pre-hook. A state dict with as many groups as
    the optimizer keeps the groups' implementation (:data:`IMPLEMENTATION`:
    fused, foreach) of the optimizer as built. One saved with the groups
    before merging (one per parameter) is turned into the merged layout; a
    piece of state that does not fit its parameter's shape stops with one
    line. Any other passes unchanged, for torch to refuse."""
    def hook(optimizer, state_dict):
        saved = state_dict['param_groups']
        if len(saved) == len(optimizer.param_groups):
            groups = [{**g, **{k: now[k] for k in IMPLEMENTATION if k in now}}
                      for g, now in zip(saved, optimizer.param_groups)]
            return {**state_dict, 'param_groups': groups}
        if [len(g['params']) for g in saved] != group_sizes:
            return None  # not ours to map: torch refuses the group count
        flat_ids = [i for g in saved for i in g['params']]
        owner = [g for g in saved for _ in g['params']]
        state = state_dict['state']
        new_groups, new_state, new_id = [], {}, 0
        for group in optimizer.param_groups:
            ids = []
            for param in group['params']:
                old_id = flat_ids[order[new_id]]
                if old_id in state:
                    _check_fits(state[old_id], param, old_id)
                    new_state[new_id] = state[old_id]
                ids.append(new_id)
                new_id += 1
            first = owner[order[ids[0]]]
            new_groups.append({**first, 'params': ids,
                               **{k: group[k] for k in IMPLEMENTATION if k in group}})
        print_log(f'optimizer state saved in {len(saved)} parameter groups '
                  f'loaded into {len(new_groups)} merged ones', logger='current')
        return {'state': new_state, 'param_groups': new_groups}
    return hook


def _check_fits(state: dict, param: torch.Tensor, index: int) -> None:
    for key, value in state.items():
        if (isinstance(value, torch.Tensor) and value.dim() > 0
                and value.shape != param.shape):
            raise ValueError(
                f'optimizer state of parameter {index} in the checkpoint ({key}, '
                f'shape {tuple(value.shape)}) does not fit the model\'s parameter '
                f'there (shape {tuple(param.shape)}): the checkpoint is not this '
                'model\'s, or lists its parameters in another order')


def merge_scheduler_states(checkpoint: dict, optimizer) -> bool:
    """In a checkpoint saved with one group per parameter, the param
    schedulers' per-group lists (``base_values``, ``_last_value``) put in
    the merged groups' layout of ``optimizer``, in place; True when done."""
    merge = getattr(optimizer, '_m2f_merge', None)
    schedulers = checkpoint.get('param_schedulers')
    saved = (checkpoint.get('optimizer') or {}).get('param_groups')
    if merge is None or not isinstance(schedulers, list) or saved is None:
        return False
    before, firsts = merge
    if len(saved) != before or before == len(firsts):
        return False
    for state in schedulers:
        for key, value in list(state.items()):
            if not isinstance(value, list):
                continue
            if len(value) == before:
                state[key] = [value[i] for i in firsts]
            elif len(value) == before + 1:  # mmengine's OptimWrapper adds its
                # base settings as a last group for the schedulers
                state[key] = [value[i] for i in firsts] + value[-1:]
    return True


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class GroupedOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's constructor (same ``paramwise_cfg``), with the parameter
    groups of equal settings merged (see the module's docstring).

    Use: ``optim_wrapper = dict(constructor='m2f_mm.GroupedOptimWrapperConstructor',
    optimizer=..., paramwise_cfg=...)``. It logs one line per merged group
    instead of mmengine's line per parameter. A ``ZeroRedundancyOptimizer``
    keeps mmengine's groups (it shards them when it is built).
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
        if type(optimizer).__name__ == 'ZeroRedundancyOptimizer':
            print_log('ZeroRedundancyOptimizer: parameter groups not merged '
                      '(it shards them as built)', logger='current')
            return wrapper
        before = optimizer.param_groups
        merged, order, firsts = merge_param_groups(before)
        optimizer.param_groups = merged
        optimizer._m2f_merge = (len(before), firsts)
        optimizer.register_load_state_dict_pre_hook(
            _per_param_pre_hook([len(g['params']) for g in before], order))
        self._log(optimizer, model, len(before), quiet.frozen)
        return wrapper

    @staticmethod
    def _log(optimizer, model, before: int, frozen: int) -> None:
        names = {id(p): n for n, p in getattr(model, 'module', model).named_parameters()}
        kind = type(optimizer).__name__ + (
            ' (fused)' if optimizer.defaults.get('fused') else
            ' (foreach)' if optimizer.defaults.get('foreach') else '')
        print_log(f'{kind}: {before} parameter groups merged into '
                  f'{len(optimizer.param_groups)}'
                  + (f'; {frozen} frozen parameters (requires_grad=False) '
                     'left out' if frozen else ''), logger='current')
        for group in optimizer.param_groups:
            first = names.get(id(group['params'][0]), '?')
            setting = ', '.join(f'{k}={group[k]}' for k in ('lr', 'weight_decay')
                                if k in group)
            print_log(f'parameter group: {len(group["params"])} tensors '
                      f'(first {first}): {setting}', logger='current')
