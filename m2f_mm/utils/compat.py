"""Fixes for running mmengine 0.10 / mmdet 3.3 / mmseg 1.2 on torch ≥ 2.6 and
numpy 2; applied on ``import m2f_mm``.

torch 2.6 made ``torch.load(weights_only=True)`` the default. mmengine
0.10.7's checkpoint loader calls ``torch.load`` without the argument, and the
checkpoints its Runner writes hold numpy scalars and arrays and mmengine's
``HistoryBuffer`` (the message hub), so resuming or testing from them fails.
Rather than turning the safe loader off, every mmengine checkpoint load runs
with exactly those types allow-listed (:func:`runner_checkpoint_globals`);
anything else in a file is still refused.
"""
import functools
from typing import List

import numpy as np
import torch


def runner_checkpoint_globals() -> List:
    """The non-tensor types mmengine's Runner puts into checkpoints."""
    from mmengine.logging import HistoryBuffer
    multiarray = getattr(np, '_core', None) or np.core  # numpy 2 / numpy 1
    dtypes = {type(np.dtype(t)) for t in (
        np.bool_, np.uint8, np.int8, np.int16, np.int32, np.int64, np.float16,
        np.float32, np.float64)}
    return [multiarray.multiarray.scalar, multiarray.multiarray._reconstruct,
            np.ndarray, np.dtype, HistoryBuffer, getattr, *dtypes]


def safe_checkpoint_context():
    """Context manager allow-listing :func:`runner_checkpoint_globals`."""
    return torch.serialization.safe_globals(runner_checkpoint_globals())


def _patch_mmengine_checkpoint_loader() -> None:
    from mmengine.runner.checkpoint import CheckpointLoader
    original = CheckpointLoader.load_checkpoint.__func__
    if getattr(original, '_m2f_mm_patched', False):
        return

    @functools.wraps(original)
    def load_checkpoint(cls, filename, map_location=None, logger='current'):
        with safe_checkpoint_context():
            return original(cls, filename, map_location, logger)

    load_checkpoint._m2f_mm_patched = True
    CheckpointLoader.load_checkpoint = classmethod(load_checkpoint)


if hasattr(torch.serialization, 'safe_globals'):  # torch ≥ 2.5
    _patch_mmengine_checkpoint_loader()
