"""``--amp`` and ``--tf32``: one setting for every implementation, in this
process and in the memory subprocesses."""
import contextlib
from typing import Optional

import torch

AMP_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}


def amp_mode(amp: Optional[str]) -> Optional[str]:
    """'fp16' / 'bf16', or None for fp32 (``--amp none``)."""
    if amp in (None, 'none'):
        return None
    if amp not in AMP_DTYPES:
        raise ValueError(f'--amp: expected none, fp16 or bf16, got {amp!r}')
    return amp


def autocast(device, amp: Optional[str]):
    """``torch.autocast`` on the device's type (cuda or cpu) in the ``--amp``
    dtype; nothing in fp32."""
    amp = amp_mode(amp)
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=AMP_DTYPES[amp])


def grad_scaler(device, amp: Optional[str]):
    """A ``GradScaler`` for fp16, whose small gradients underflow without
    loss scaling; None for bf16 (fp32's exponent range) and fp32."""
    if amp_mode(amp) != 'fp16':
        return None
    return torch.amp.GradScaler(torch.device(device).type)


def set_tf32(mode: Optional[str]) -> None:
    """``--tf32 on`` / ``off`` sets TF32 for both CUDA matmuls and cuDNN
    convolutions; None leaves PyTorch's defaults (matmuls off, cuDNN on)."""
    if mode is None:
        return
    if mode not in ('on', 'off'):
        raise ValueError(f'--tf32: expected on or off, got {mode!r}')
    torch.backends.cuda.matmul.allow_tf32 = mode == 'on'
    torch.backends.cudnn.allow_tf32 = mode == 'on'


def tf32_state(mode: Optional[str] = None) -> str:
    """The TF32 flags in force, for the report's header (they change CUDA
    timings by a third, and nothing on the CPU)."""
    source = 'PyTorch defaults' if mode is None else f'--tf32 {mode}'
    return (f'TF32: torch.backends.cuda.matmul.allow_tf32='
            f'{torch.backends.cuda.matmul.allow_tf32}, '
            f'torch.backends.cudnn.allow_tf32={torch.backends.cudnn.allow_tf32} '
            f'({source}).')
