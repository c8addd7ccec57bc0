"""TF32 on CUDA as one switch: ``env_cfg=dict(tf32=...)`` in a config, or
``--tf32 on|off`` of tools/train.py and tools/test.py.

TF32 runs float32 matrix products and convolutions on tensor cores with a
10-bit mantissa: faster on Ampere and later GPUs, less exact (about 1e-3
relative). PyTorch's defaults, which MMDetection keeps, are matmuls off and
cuDNN convolutions on; ``None`` leaves them so.
"""
from typing import Optional

import torch


def apply_tf32(setting: Optional[bool]) -> str:
    """Set TF32 for matmuls and cuDNN convolutions: ``True`` both on,
    ``False`` both off, ``None`` PyTorch's defaults (as they are). Returns
    the line our tools log."""
    if setting is not None:
        if not isinstance(setting, bool):
            raise ValueError(f'env_cfg.tf32 must be True, False or None, got {setting!r}')
        torch.backends.cuda.matmul.allow_tf32 = setting
        torch.backends.cudnn.allow_tf32 = setting
    how = "PyTorch's defaults" if setting is None else ('on' if setting else 'off')
    return (f'TF32 ({how}): matmul {torch.backends.cuda.matmul.allow_tf32}, '
            f'cuDNN convolutions {torch.backends.cudnn.allow_tf32}')


def tf32_option(value: Optional[str]) -> Optional[bool]:
    """``--tf32 on|off`` as the config value (None when not given)."""
    return None if value is None else value == 'on'
