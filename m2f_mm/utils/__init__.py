from .compat import (cpu_ddp_wrapper_cfg, runner_checkpoint_globals,
                     safe_checkpoint_context)

__all__ = ['runner_checkpoint_globals', 'safe_checkpoint_context',
           'cpu_ddp_wrapper_cfg']
