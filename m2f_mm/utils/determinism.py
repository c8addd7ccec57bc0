"""Deterministic runs (``randomness=dict(deterministic=True)``) that train on
every device.

mmengine turns on ``torch.use_deterministic_algorithms(True)``, under which
PyTorch raises for any op that has no deterministic kernel on the device
(on CUDA: ``grid_sample``'s and bilinear ``interpolate``'s backward, the
weighted NLL loss, ...). m2f_mm's own training graph avoids those on CUDA
(:mod:`m2f_mm.ops.dispatch`), but a backbone, a host or a user's part may
not. Our tools therefore keep the mode on with ``warn_only=True`` and name
each op that ran without a deterministic kernel once in the log, instead of
stopping the run; a run that names none repeats bit for bit on the same
machine and packages.
"""
import os
import re
import warnings

import torch
from mmengine.logging import print_log

CUBLAS_ENV = 'CUBLAS_WORKSPACE_CONFIG'
# PyTorch's alert: "<op, sometimes with words on when> does not have a
# deterministic implementation, but you set ..."
_NOT_DETERMINISTIC = re.compile(r'^(.{1,200}?) does not have a deterministic implementation')


def prepare_deterministic(cfg) -> bool:
    """Before anything runs on CUDA: cuBLAS needs a fixed workspace
    (``CUBLAS_WORKSPACE_CONFIG``) to repeat its results. Returns whether the
    config asks for a deterministic run."""
    deterministic = bool((cfg.get('randomness') or {}).get('deterministic'))
    if deterministic:
        os.environ.setdefault(CUBLAS_ENV, ':4096:8')
    return deterministic


def relax_deterministic() -> None:
    """Deterministic algorithms, warning instead of failing where an op has
    none; those warnings become one log line per op
    (:func:`log_nondeterministic_ops`)."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    log_nondeterministic_ops()


def describe_deterministic_mode() -> str:
    """The line our tools log when a run starts in deterministic mode."""
    line = ('deterministic mode: torch.use_deterministic_algorithms(True, '
            'warn_only=True); an op without a deterministic kernel is named '
            'once in this log and the run goes on')
    if torch.cuda.is_available():
        line += ('; on CUDA m2f_mm uses its deterministic forms (gathered '
                 'point sampling and deformable attention, matrix-form bilinear '
                 'resizing, the math attention kernel), which are slower')
    return line


class _OpLogger:
    """``warnings.showwarning`` that turns PyTorch's "X does not have a
    deterministic implementation" warnings into one log line per op and
    passes every other warning on."""

    def __init__(self, previous) -> None:
        self.previous = previous
        self.seen = set()

    def __call__(self, message, category, filename, lineno, file=None, line=None):
        match = _NOT_DETERMINISTIC.search(str(message).strip())
        if match is None:
            return self.previous(message, category, filename, lineno, file, line)
        op = match.group(1)
        if op not in self.seen:
            self.seen.add(op)
            print_log(f'deterministic mode: {op} has no deterministic kernel '
                      'on this device; this run may not repeat bit for bit',
                      logger='current', level=30)


def log_nondeterministic_ops() -> _OpLogger:
    """Install the one-line-per-op logging of non-deterministic ops (once
    per process); returns it (its ``seen`` holds the ops named so far)."""
    hook = warnings.showwarning
    if not isinstance(hook, _OpLogger):
        hook = _OpLogger(warnings.showwarning)
        warnings.showwarning = hook
    return hook
