"""Fixes for running mmengine 0.10 / mmdet 3.3 / mmseg 1.2 on torch ≥ 2.6 and
numpy 2, and atomic file writes; applied on ``import m2f_mm``.

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


def _atomic_write(filepath, data, mode: str, encoding=None) -> None:
    """Write to a temporary file beside ``filepath``, then rename it over: a
    crash mid-write leaves the old file (or none), never a truncated one."""
    import os
    import tempfile
    directory = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(filepath) + '.',
                               suffix='.part', dir=directory)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            f.write(data)
        os.replace(tmp, filepath)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _patch_mmengine_local_writes() -> None:
    """mmengine's LocalBackend (behind checkpoint saving and ``dump`` of
    results) writes in place; make its writes atomic."""
    from mmengine.fileio.backends.local_backend import LocalBackend
    if getattr(LocalBackend.put, '_m2f_mm_patched', False):
        return

    def put(self, obj: bytes, filepath) -> None:
        _atomic_write(filepath, obj, 'wb')

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        _atomic_write(filepath, obj, 'w', encoding)

    put._m2f_mm_patched = True
    LocalBackend.put = put
    LocalBackend.put_text = put_text


_patch_mmengine_local_writes()


def _patch_mmengine_cpu_distributed() -> None:
    """mmengine's PyTorch launcher always calls ``torch.cuda.set_device``,
    which fails on a CPU-only torch. Without CUDA, initialise the process
    group directly, with gloo in place of nccl."""
    import mmengine.dist.utils as dist_utils
    original = dist_utils._init_dist_pytorch
    if getattr(original, '_m2f_mm_patched', False):
        return

    @functools.wraps(original)
    def init_dist_pytorch(backend, init_backend='torch', **kwargs):
        if torch.cuda.is_available() or init_backend != 'torch':
            return original(backend, init_backend=init_backend, **kwargs)
        torch.distributed.init_process_group(
            backend='gloo' if backend == 'nccl' else backend, **kwargs)

    init_dist_pytorch._m2f_mm_patched = True
    dist_utils._init_dist_pytorch = init_dist_pytorch


_patch_mmengine_cpu_distributed()


def cpu_ddp_wrapper_cfg(cfg) -> None:
    """On a machine without CUDA, make the Runner's DDP wrapper take CPU
    modules (mmengine passes ``device_ids=[LOCAL_RANK]`` otherwise)."""
    if cfg.get('launcher', 'none') != 'none' and not torch.cuda.is_available():
        wrapper = dict(cfg.get('model_wrapper_cfg') or
                       dict(type='MMDistributedDataParallel'))
        wrapper.setdefault('device_ids', None)
        cfg.model_wrapper_cfg = wrapper


def _patch_mmdet_empty_panoptic_drawing() -> None:
    """MMDet 3.3's visualizer fails (``np.stack`` of nothing) on a panoptic
    prediction without segments, e.g. from an untrained model; draw the image
    as it is instead."""
    from mmdet.visualization import DetLocalVisualizer
    original = DetLocalVisualizer._draw_panoptic_seg
    if getattr(original, '_m2f_mm_patched', False):
        return

    @functools.wraps(original)
    def draw(self, image, panoptic_seg, classes, palette):
        ids = torch.as_tensor(panoptic_seg.sem_seg).unique()
        if not (ids != len(classes)).any():
            return image
        return original(self, image, panoptic_seg, classes, palette)

    draw._m2f_mm_patched = True
    DetLocalVisualizer._draw_panoptic_seg = draw


_patch_mmdet_empty_panoptic_drawing()
