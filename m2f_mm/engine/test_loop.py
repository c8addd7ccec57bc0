"""Inference in mixed precision for ``tools/test.py --amp``.

mmengine's ``TestLoop(fp16=True)`` autocasts to float16 only; this loop
takes the dtype (bfloat16 on CPU, float16 or bfloat16 on CUDA). The
network runs under autocast; the heads return float32 logits and fuse them
in float32 (:meth:`m2f_mm.models.Mask2FormerHead.predict`), so the
evaluators see the same types as in a float32 run.
"""
import torch
from mmengine.runner import TestLoop
from mmengine.runner.loops import _update_losses

from m2f_mm.registry import LOOPS
from .optim_wrapper import _dtype


@LOOPS.register_module()
class AutocastTestLoop(TestLoop):
    """``TestLoop`` whose iterations run under ``torch.autocast`` on the
    model's device.

    Args:
        dtype: ``'bfloat16'`` (default) or ``'float16'`` (CUDA).
        Others: those of mmengine's ``TestLoop`` (without ``fp16``).
    """

    def __init__(self, runner, dataloader, evaluator, dtype='bfloat16') -> None:
        super().__init__(runner, dataloader, evaluator)
        self.cast_dtype = _dtype(dtype)

    @torch.no_grad()
    def run_iter(self, idx, data_batch) -> None:
        # TestLoop.run_iter's steps; its own `autocast(enabled=fp16)` would
        # turn ours off, so the network call is wrapped here instead
        device = next(self.runner.model.parameters()).device.type
        if device == 'cpu' and self.cast_dtype != torch.bfloat16:
            raise ValueError('mixed precision on CPU runs bfloat16 only, not '
                             f'{self.cast_dtype}')
        self.runner.call_hook('before_test_iter', batch_idx=idx, data_batch=data_batch)
        with torch.autocast(device, dtype=self.cast_dtype):
            outputs = self.runner.model.test_step(data_batch)
        outputs, self.test_loss = _update_losses(outputs, self.test_loss)
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook('after_test_iter', batch_idx=idx,
                              data_batch=data_batch, outputs=outputs)
