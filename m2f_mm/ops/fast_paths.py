"""The one switch for m2f_mm's fast paths.

A fast path computes exactly what a plain reference computes, only faster
on some device; each lives in :mod:`m2f_mm.ops` beside its reference and has
a test that the two agree:

* :func:`~m2f_mm.ops.ms_deform_attn`: mmcv's CUDA kernel on GPU, a
  sparse-matrix form on CPU (reference: ``F.grid_sample`` per level);
* mask logits at sampled points on CPU from the full logits
  (:func:`~m2f_mm.ops.mask_point_logits_impl`; reference: the embeddings
  times the sampled features, the CUDA route);
* :func:`~m2f_mm.ops.chunks`: large point and cost computations in pieces
  (reference: one piece).

They are on by default. ``M2F_MM_FAST_PATHS=0`` in the environment turns all
of them off for a process; ``with fast_paths(False):`` for a block (ONNX
export runs the references this way).
"""
import os
from contextlib import contextmanager
from typing import Iterator, Optional

_override: Optional[bool] = None


def fast_paths_enabled() -> bool:
    """Whether the fast paths are on (the block setting, else the
    environment, else on)."""
    if _override is not None:
        return _override
    return os.environ.get('M2F_MM_FAST_PATHS', '1').strip().lower() not in (
        '0', 'false', 'no', 'off')


@contextmanager
def fast_paths(enabled: bool) -> Iterator[None]:
    """Turn the fast paths on or off inside a ``with`` block."""
    global _override
    previous, _override = _override, bool(enabled)
    try:
        yield
    finally:
        _override = previous
