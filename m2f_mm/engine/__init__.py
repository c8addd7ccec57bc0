from .optim_wrapper import AutocastOptimWrapper, amp_optim_wrapper_cfg
from .test_loop import AutocastTestLoop

__all__ = ['AutocastOptimWrapper', 'AutocastTestLoop', 'amp_optim_wrapper_cfg']
