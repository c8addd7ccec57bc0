"""Which implementation of an op runs where: one pure function per op, of
(device, dtype, fast paths on/off, deterministic mode), so the choice is
made and tested in one place (``tests/test_dispatch.py`` covers every
combination on CPU).

Deterministic mode is PyTorch's (``torch.use_deterministic_algorithms``;
mmengine's ``randomness=dict(deterministic=True)`` turns it on). On CUDA
it refuses ``grid_sample``'s and bilinear ``interpolate``'s backward, and
mmcv's deformable-attention kernel accumulates its gradients with atomics
(so it repeats only approximately); there the deterministic forms of
:mod:`m2f_mm.ops.bilinear` run instead.
"""
from typing import List, Optional

import torch
from torch import Tensor

from .fast_paths import fast_paths_enabled

FLOAT_TYPES = (torch.float32, torch.float64)
REDUCED_TYPES = (torch.float16, torch.bfloat16)


def deterministic_mode() -> bool:
    """Whether PyTorch's deterministic algorithms are on (warn-only too)."""
    return torch.are_deterministic_algorithms_enabled()


def deform_attn_impl(device: str, dtype: torch.dtype, fast_paths: bool,
                     deterministic: bool) -> str:
    """The sampling step of multi-scale deformable attention:

    * ``'mmcv'``: mmcv's CUDA kernel, float32/float64;
    * ``'mmcv_float32'``: the same kernel on float16/bfloat16 inputs cast to
      float32, the output cast back. mmcv dispatches no bfloat16, and its
      float16 path casts the locations to float16 and accumulates gradients
      in float16 (measured on an H200: 1e-2 relative error in the output,
      0.16 in the location gradient);
    * ``'sparse'``: the sparse-matrix form, CPU float32/float64;
    * ``'gather'``: corners gathered (deterministic backward on CUDA);
    * ``'grid_sample'``: the reference, one ``grid_sample`` per level.

    ``device`` is a device type (``'cpu'``, ``'cuda'``, ...).
    """
    if device == 'cuda':
        if deterministic:
            return 'gather'
        if fast_paths:
            return 'mmcv' if dtype in FLOAT_TYPES else 'mmcv_float32'
        return 'grid_sample'
    if device == 'cpu' and fast_paths and dtype in FLOAT_TYPES:
        return 'sparse'
    return 'grid_sample'


def point_sample_impl(device: str, deterministic: bool, needs_grad: bool) -> str:
    """Point sampling of masks: ``'gather'`` where ``grid_sample``'s
    backward would run under deterministic mode on CUDA, else
    ``'grid_sample'``."""
    if device == 'cuda' and deterministic and needs_grad:
        return 'gather'
    return 'grid_sample'


def resize_impl(device: str, deterministic: bool, needs_grad: bool) -> str:
    """Bilinear resizing: ``'matrix'`` where ``interpolate``'s backward
    would run under deterministic mode on CUDA, else ``'interpolate'``."""
    if device == 'cuda' and deterministic and needs_grad:
        return 'matrix'
    return 'interpolate'


def mask_point_logits_impl(device: str, fast_paths: bool) -> str:
    """Mask logits of every query at sampled points, from mask embeddings
    and per-pixel features: ``'features'`` samples the features and
    multiplies (fewer products where the map has more pixels than there are
    points, and GPUs sample many channels fast); ``'full'`` makes the full
    logits and samples them (a CPU fast path: there ``grid_sample`` over
    hundreds of channels is the slow part)."""
    return 'full' if device == 'cpu' and fast_paths else 'features'


def attention_backends(device: str, deterministic: bool) -> Optional[List]:
    """SDPA backends allowed for attention: under deterministic mode on
    CUDA the math kernel only (the fused kernels' backward accumulate with
    atomics unless asked otherwise); None: PyTorch's choice."""
    if device == 'cuda' and deterministic:
        from torch.nn.attention import SDPBackend
        return [SDPBackend.MATH]
    return None


def needs_grad(t: Tensor) -> bool:
    return torch.is_grad_enabled() and t.requires_grad


def current_deform_attn_impl(value: Tensor) -> str:
    """:func:`deform_attn_impl` for ``value`` and the current switches."""
    return deform_attn_impl(value.device.type, value.dtype, fast_paths_enabled(),
                            deterministic_mode())
