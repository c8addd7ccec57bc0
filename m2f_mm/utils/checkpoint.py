"""The one checkpoint loader of m2f_mm's tools.

Every tool that reads a checkpoint (tools/test.py and ``load_from`` /
``--resume`` of tools/train.py through :class:`~m2f_mm.utils.runner.M2FRunner`,
tools/demo.py, tools/export_onnx.py, tools/analyze_things.py,
tools/convert_checkpoint.py) reads it with :func:`read_checkpoint` and, when it
fills a model, checks with :func:`check_covers` that the checkpoint is this
model's. Each problem is a :class:`~m2f_mm.utils.errors.CheckpointError` whose
message is one line naming the file:

- missing, empty, truncated or not a PyTorch file at all;
- a pickle that would run code: torch's ``weights_only`` loader refuses it
  (nothing runs) and the line names the refused global;
- a checkpoint that does not cover the model (another model's, or another
  class count): how many of the model's keys it holds, the first missing,
  unexpected and differently shaped key, and the option that loads part of a
  checkpoint on purpose, :data:`PARTIAL_OPTION`.

A backbone-only ``init_cfg=dict(type='Pretrained', prefix=...)`` is partial by
design: tools/train.py reads its file with :func:`read_checkpoint` first, and
mmengine's initialiser loads the prefix's keys without :func:`check_covers`.
"""
import logging
import os
import pickle
import re
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .errors import CheckpointError

#: the config key that allows a checkpoint covering only part of the model
PARTIAL_KEY = 'load_partial'
#: how the messages name it
PARTIAL_OPTION = f'--cfg-options {PARTIAL_KEY}=True'

_ZIP_MAGIC = b'PK\x03\x04'  # torch.save's default (zip) format
_PICKLE_PROTO = 0x80  # the first byte of a protocol ≥ 2 pickle (torch's legacy format)
_REFUSED_GLOBAL = re.compile(r'GLOBAL ([\w.]+)')


def _first_sentence(exc: BaseException) -> str:
    """The informative start of a torch / pickle error: its first line, cut
    at the first sentence (torch appends paragraphs of advice)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[0].split('. ')[0].rstrip('.')


def _refusal(path: str, exc: BaseException) -> str:
    """The one line for what torch's ``weights_only`` unpickler refused."""
    text = str(exc)
    found = _REFUSED_GLOBAL.search(text)
    if found:
        return (f'{path}: refusing to load {found.group(1)}: a checkpoint holds '
                'tensors and plain data, not code (nothing was run)')
    # the sentence after torch's preamble names the refused operation
    detail = [line.strip() for line in text.splitlines()
              if line.strip() and 'weights_only' not in line and 'Weights only' not in line]
    return (f'{path}: refused by torch.load(weights_only=True): '
            f'{detail[0] if detail else _first_sentence(exc)} (nothing was run)')


def read_checkpoint(path: str, map_location='cpu') -> Dict:
    """The dict stored in the checkpoint file ``path``, read with
    ``torch.load(weights_only=True)`` and the allow-list of mmengine Runner
    checkpoints (:func:`m2f_mm.patches.safe_checkpoint_context`).

    Args:
        path: a local file.
        map_location: as for ``torch.load``.

    Returns:
        dict: the checkpoint (``state_dict``, ``meta``, ... or a bare state
        dict).

    Raises:
        CheckpointError: one line naming ``path`` and what is wrong with it.
    """
    from ..patches import safe_checkpoint_context
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f'{path}: no such file')
    if os.path.isdir(path):
        raise CheckpointError(f'{path}: a folder, not a checkpoint file')
    with open(path, 'rb') as f:
        head = f.read(8)
    if not head:
        raise CheckpointError(f'{path}: empty file (0 bytes), not a checkpoint')
    if not head.startswith(_ZIP_MAGIC) and head[0] != _PICKLE_PROTO:
        raise CheckpointError(f'{path}: not a PyTorch checkpoint (neither a zip '
                              f'archive nor a pickle; it starts with {head!r})')
    try:
        with safe_checkpoint_context():
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if 'weights_only' in str(e) or 'Weights only' in str(e):
            raise CheckpointError(_refusal(path, e)) from None
        raise CheckpointError(f'{path}: truncated or damaged checkpoint '
                              f'({_first_sentence(e)})') from None
    except (RuntimeError, EOFError, ValueError, KeyError, OSError) as e:
        # a zip archive cut short, or a legacy pickle cut short or garbled
        raise CheckpointError(f'{path}: truncated or damaged checkpoint '
                              f'({_first_sentence(e)})') from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'{path}: holds a {type(ckpt).__name__}, not a '
                              'checkpoint (a dict of tensors, or one with a state_dict)')
    return ckpt


def state_dict_of(checkpoint: Dict,
                  revise_keys: Sequence[Tuple[str, str]] = ((r'^module\.', ''),)
                  ) -> Dict[str, torch.Tensor]:
    """The weights in ``checkpoint`` as mmengine's ``load_checkpoint`` sees
    them: its ``state_dict`` (else the dict itself) with ``revise_keys``
    applied (DDP's ``module.`` prefix stripped by default)."""
    state = checkpoint.get('state_dict', checkpoint)
    out = {}
    for key, value in state.items():
        for pattern, repl in revise_keys:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def _filled(model: nn.Module) -> nn.Module:
    """The module mmengine's ``load_state_dict`` fills: a test-time
    augmentation model (``--tta``) passes the checkpoint to its ``module``."""
    from mmengine.model import BaseTTAModel
    return model.module if isinstance(model, BaseTTAModel) else model


def coverage(model: nn.Module, state: Dict[str, torch.Tensor]
             ) -> Tuple[int, List[str], List[str], List[str]]:
    """How ``state`` fills ``model``: (number of the model's keys it holds
    with the model's shape, the model's keys it lacks, its keys the model
    lacks, keys whose shapes differ), in the model's key order."""
    own = _filled(model).state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in own if k in state and hasattr(state[k], 'shape')
                and tuple(state[k].shape) != tuple(own[k].shape)]
    held = len(own) - len(missing) - len(reshaped)
    return held, missing, unexpected, reshaped


def _shape(t) -> str:
    return 'x'.join(map(str, t.shape)) or 'scalar'


def check_covers(model: nn.Module, checkpoint: Dict, path: str,
                 partial: bool = False,
                 revise_keys: Sequence[Tuple[str, str]] = ((r'^module\.', ''),)
                 ) -> Optional[str]:
    """Check that ``checkpoint`` holds every weight of ``model`` with the
    model's shape.

    Args:
        model: the model about to be filled (unwrapped).
        checkpoint: what :func:`read_checkpoint` returned.
        path: the file, for the message.
        partial: allow a checkpoint that covers part of the model (fine-tuning
            with another class count, a checkpoint of a part): the problem is
            returned for a log instead of raised.
        revise_keys: as mmengine's ``load_checkpoint`` applies them.

    Returns:
        str or None: with ``partial``, the one line describing what is not
        covered (None when all is).

    Raises:
        CheckpointError: without ``partial``, when anything is not covered.
    """
    state = state_dict_of(checkpoint, revise_keys)
    held, missing, unexpected, reshaped = coverage(model, state)
    if not missing and not reshaped:
        return None
    total = held + len(missing) + len(reshaped)
    parts = []
    if missing:
        parts.append(f'first missing: {missing[0]}')
    if unexpected:
        parts.append(f'first unexpected: {unexpected[0]}')
    if reshaped:
        k = reshaped[0]
        parts.append(f'first of another shape: {k} '
                     f'{_shape(state[k])} vs {_shape(_filled(model).state_dict()[k])}')
    msg = (f'{path}: does not cover the model: holds {held} of its {total} '
           f'weights ({"; ".join(parts)})')
    if partial:
        return msg
    raise CheckpointError(f'{msg}; to load only the weights that fit, on '
                          f'purpose: {PARTIAL_OPTION}')


def load_into(model: nn.Module, path: str, partial: bool = False,
              map_location='cpu') -> Dict:
    """Read ``path`` (:func:`read_checkpoint`), check it covers ``model``
    (:func:`check_covers`) and load it the way mmengine's
    ``load_checkpoint`` does (``module.`` stripped, not strict).

    Args:
        model: the model to fill.
        path: a local checkpoint file.
        partial: allow a checkpoint that covers part of the model.
        map_location: as for ``torch.load``.

    Returns:
        dict: the checkpoint (its ``meta`` holds e.g. ``dataset_meta``).
    """
    from mmengine.logging import print_log
    from mmengine.runner.checkpoint import _load_checkpoint_to_model
    checkpoint = read_checkpoint(path, map_location)
    gap = check_covers(model, checkpoint, path, partial)
    if gap is not None:
        print_log(f'{gap} (loaded partially: {PARTIAL_KEY}=True)',
                  logger='current', level=logging.WARNING)
    # the check above said all there is to say about the keys
    return _load_checkpoint_to_model(model, checkpoint, strict=False,
                                     logger='silent')


def is_local(filename) -> bool:
    """Whether ``filename`` is a local path (not ``http://``, ``s3://``,
    ``open-mmlab://``, ... which mmengine's own loader fetches)."""
    return isinstance(filename, (str, os.PathLike)) and '://' not in os.fspath(filename)
