from .compat import runner_checkpoint_globals, safe_checkpoint_context

__all__ = ['runner_checkpoint_globals', 'safe_checkpoint_context']
