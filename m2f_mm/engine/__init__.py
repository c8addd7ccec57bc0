from .hooks import LogVarsToHostHook, MergedGroupsResumeHook
from .optim_constructor import (GroupedOptimWrapperConstructor, merge_param_groups,
                                merge_scheduler_states)
from .optim_wrapper import AutocastOptimWrapper, amp_optim_wrapper_cfg
from .test_loop import AutocastTestLoop

__all__ = ['AutocastOptimWrapper', 'AutocastTestLoop', 'GroupedOptimWrapperConstructor',
           'LogVarsToHostHook', 'MergedGroupsResumeHook', 'amp_optim_wrapper_cfg',
           'merge_param_groups', 'merge_scheduler_states']
