"""Everything m2f_mm changes in, or works around in, other libraries.

Each fix names the upstream problem it works around. Most need no patching:

============================  =========================================  ================
fix                           how                                        when
============================  =========================================  ================
checkpoints load on torch≥2.6 torch's public allow-list,                 our tools; and on
                              :func:`allow_runner_checkpoint_globals`    ``import m2f_mm``
atomic checkpoint writes      file backend ``'m2f_mm_atomic_local'``,    our configs'
                              :class:`AtomicLocalBackend`                CheckpointHook
atomic ``--out`` results      metric ``m2f_mm.AtomicDumpResults``        tools/test.py
CPU-only distributed runs     :func:`setup_cpu_distributed`              our tools
empty panoptic overlays       visualizer ``m2f_mm.DetLocalVisualizer``   our configs
============================  =========================================  ================

Only the first changes anything outside m2f_mm on import (torch's allow-list):
MMDet's and MMSeg's own ``tools/train.py --resume`` and ``tools/test.py`` load
the checkpoints our configs write. ``M2F_MM_NO_PATCHES=1`` skips it, and
``import m2f_mm`` then leaves torch, mmengine, MMDet and MMSeg as they were; our
tools apply it themselves. Registering new names (the backend, the metric, the
visualizer) changes nothing that does not ask for them by name.

No class or function of mmengine, MMDet or MMSeg is replaced.
"""
import os
import pickle
import sys
from contextlib import contextmanager
from datetime import timedelta
from typing import Iterator, List

import numpy as np
import torch
from torch import Tensor, nn
from mmdet.visualization import DetLocalVisualizer as MMDetLocalVisualizer
from mmengine.evaluator import DumpResults
from mmengine.fileio import dump, register_backend
from mmengine.fileio.backends import LocalBackend
from mmengine.logging import print_log

from .registry import METRICS, VISUALIZERS
from .utils.fileio import atomic_write

NO_PATCHES_ENV = 'M2F_MM_NO_PATCHES'


def patches_disabled() -> bool:
    """Whether ``M2F_MM_NO_PATCHES`` asks ``import m2f_mm`` to change nothing."""
    return os.environ.get(NO_PATCHES_ENV, '').strip().lower() not in (
        '', '0', 'false', 'no')


# --- torch ≥ 2.6 cannot load mmengine's checkpoints ---------------------------
# torch 2.6 made ``torch.load(weights_only=True)`` the default. mmengine 0.10.7
# calls ``torch.load`` without the argument, and the checkpoints its Runner
# writes hold numpy scalars, arrays and dtypes and mmengine's ``HistoryBuffer``
# (the message hub), so ``--resume``, ``tools/test.py`` and ``load_checkpoint``
# fail with "Weights only load failed". Rather than turning the safe loader off,
# exactly those types are allow-listed; anything else in a file is still refused.

def _history_buffer_method(obj, name: str):
    """Stands in for ``builtins.getattr`` while unpickling: HistoryBuffer
    pickles its statistics methods as ``getattr(HistoryBuffer, 'mean')``.
    That lookup, and no other, is allowed."""
    from mmengine.logging import HistoryBuffer
    if (obj is HistoryBuffer and isinstance(name, str) and not name.startswith('_')
            and callable(getattr(HistoryBuffer, name, None))):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint (m2f_mm '
        'allows only HistoryBuffer statistics methods)')


def runner_checkpoint_globals() -> List:
    """The non-tensor globals in mmengine Runner checkpoints, for
    ``torch.serialization.add_safe_globals`` / ``safe_globals``."""
    from mmengine.logging import HistoryBuffer
    multiarray = getattr(np, '_core', None) or np.core  # numpy 2 / numpy 1
    dtypes = {type(np.dtype(t)) for t in (
        np.bool_, np.uint8, np.int8, np.int16, np.int32, np.int64, np.float16,
        np.float32, np.float64)}
    return [multiarray.multiarray.scalar, multiarray.multiarray._reconstruct,
            np.ndarray, np.dtype, HistoryBuffer, *sorted(dtypes, key=str),
            (_history_buffer_method, 'builtins.getattr')]


def safe_checkpoint_context():
    """Context manager: :func:`runner_checkpoint_globals` allowed inside it only."""
    return torch.serialization.safe_globals(runner_checkpoint_globals())


def allow_runner_checkpoint_globals() -> None:
    """Allow :func:`runner_checkpoint_globals` in every ``torch.load`` of the
    process (torch's public allow-list; calling it again changes nothing)."""
    if hasattr(torch.serialization, 'add_safe_globals'):  # torch ≥ 2.4
        torch.serialization.add_safe_globals(runner_checkpoint_globals())


# --- mmengine writes checkpoints and results in place -------------------------
# mmengine 0.10.7's LocalBackend.put/put_text open the target and write into it,
# so a run killed or out of disk mid-save leaves a truncated ``iter_N.pth`` that
# looks whole. This backend writes beside the target and renames over it.

@register_backend('m2f_mm_atomic_local', force=True)
class AtomicLocalBackend(LocalBackend):
    """mmengine's LocalBackend whose writes are atomic (:func:`atomic_write`).
    Selected with ``backend_args=ATOMIC_BACKEND_ARGS``: in our configs'
    CheckpointHook, every ``iter_N.pth``/``best_*.pth`` goes through it. (The
    hook writes the small ``last_checkpoint`` file with ``open`` itself.)"""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(filepath, lambda f: f.write(obj), 'wb')

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(filepath, lambda f: f.write(obj), 'w', encoding)


ATOMIC_BACKEND_ARGS = dict(backend='m2f_mm_atomic_local')


@METRICS.register_module()
class AtomicDumpResults(DumpResults):
    """mmengine's DumpResults (``tools/test.py --out``), written atomically."""

    def compute_metrics(self, results: list) -> dict:
        dump(results, self.out_file_path, backend_args=ATOMIC_BACKEND_ARGS)
        print_log(f'Results have been saved to {self.out_file_path}.',
                  logger='current')
        return {}


# --- mmengine cannot launch distributed runs on a CPU-only torch --------------
# mmengine 0.10.7's PyTorch launcher (``mmengine.dist.utils._init_dist_pytorch``)
# calls ``torch.cuda.set_device`` unconditionally, and its Runner gives DDP
# ``device_ids=[LOCAL_RANK]``; both fail without CUDA. The Runner initialises
# the process group only when none exists, so we create it first, with gloo.

def setup_cpu_distributed(cfg) -> None:
    """On a machine without CUDA and a ``launcher`` other than ``'none'``: give
    the DDP wrapper ``device_ids=None`` and, for ``'pytorch'`` (torchrun),
    start the process group from ``env_cfg.dist_cfg`` with gloo for nccl.
    Call before building the Runner; does nothing otherwise."""
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    wrapper = dict(cfg.get('model_wrapper_cfg') or
                   dict(type='MMDistributedDataParallel'))
    wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper
    if cfg.launcher != 'pytorch' or torch.distributed.is_initialized():
        return
    dist_cfg = dict((cfg.get('env_cfg') or {}).get('dist_cfg') or {})
    if dist_cfg.pop('init_backend', 'torch') != 'torch':
        return
    backend = dist_cfg.pop('backend', 'nccl')
    if dist_cfg.get('timeout') is not None:
        dist_cfg['timeout'] = timedelta(seconds=dist_cfg['timeout'])
    torch.distributed.init_process_group(
        backend='gloo' if backend == 'nccl' else backend, **dist_cfg)


# --- MMDet draws no overlay for an empty panoptic prediction ------------------
# MMDet 3.3's DetLocalVisualizer._draw_panoptic_seg fails on a panoptic result
# without segments (all pixels VOID, e.g. from an untrained model) in
# ``tools/test.py --show-dir`` and DetInferencer (tools/demo.py).

@VISUALIZERS.register_module()
class DetLocalVisualizer(MMDetLocalVisualizer):
    """MMDet's DetLocalVisualizer; an empty panoptic prediction draws the
    image as it is. Our MMDet-hosted configs select it."""

    def _draw_panoptic_seg(self, image, panoptic_seg, classes, palette):
        if 'label_names' in panoptic_seg:
            void = panoptic_seg.metainfo.get(
                'ignore_index', len(panoptic_seg.metainfo['label_names']))
        else:
            void = len(classes)
        if (np.unique(np.asarray(panoptic_seg.sem_seg)) == void).all():
            return image
        return super()._draw_panoptic_seg(image, panoptic_seg, classes, palette)


# --- applied on ``import m2f_mm`` ---------------------------------------------
ON_IMPORT = (allow_runner_checkpoint_globals,)


def apply_on_import() -> None:
    """What ``import m2f_mm`` applies (:data:`ON_IMPORT`), unless
    ``M2F_MM_NO_PATCHES=1``."""
    if not patches_disabled():
        for fix in ON_IMPORT:
            fix()


# --- MMDet's/MMSeg's Swin freezes its batch size in a traced graph -----------
# Used by ONNX export only (m2f_mm.deploy), inside the export call.
_SWIN_MODULES = ('mmdet.models.backbones.swin', 'mmseg.models.backbones.swin')


@contextmanager
def traceable_swin() -> Iterator[None]:
    """Inside the block, MMDet's and MMSeg's ``ShiftWindowMSA.window_reverse``
    infer the batch size with ``view(-1, ...)``: theirs computes it with
    ``int()``, which a traced graph freezes (a Swin graph exported at batch
    1 then fails at batch 2). Only modules already imported are touched and
    the original is restored on exit; outside export nothing changes."""
    patched = []
    for name in _SWIN_MODULES:
        module = sys.modules.get(name)
        if module is not None and hasattr(module, 'ShiftWindowMSA'):
            cls = module.ShiftWindowMSA
            patched.append((cls, cls.__dict__['window_reverse']))
            cls.window_reverse = _window_reverse
    try:
        yield
    finally:
        for cls, original in patched:
            cls.window_reverse = original


def _window_reverse(self, windows: Tensor, h, w) -> Tensor:
    # windows: (B·nW)×ws×ws×C → B×H×W×C
    ws, c = self.window_size, windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def check_swin_trace_size(model: nn.Module, h: int, w: int) -> None:
    """MMDet's / MMSeg's Swin pads each stage's map to whole windows and
    crops the padding off again only ``if`` there was any: a Python branch
    that the trace records as taken or not. Traced at a size where some
    stage needs no padding, the crop would be missing at sizes where it
    does, so a dynamic export must trace a size where every stage pads."""
    backbone = model.backbone
    if type(backbone).__module__ not in _SWIN_MODULES:
        return
    for i, stage in enumerate(backbone.stages):
        ws = stage.blocks[0].attn.window_size
        sh, sw = h // (4 * 2**i), w // (4 * 2**i)
        if sh % ws == 0 and sw % ws == 0:
            raise ValueError(
                f'export_onnx: a Swin backbone traced at {h}x{w} has stage {i} '
                f'at {sh}x{sw}, whole {ws}x{ws} windows, so the dynamic graph '
                'would lack the crop that other sizes need; trace another size '
                '(e.g. 128x128)')
