"""Reading checkpoints that come from the internet without running their code.

- detectron2 model-zoo ``.pkl``: a Python pickle. :func:`load_d2_pickle`
  unpickles it with an allow-list that admits containers, strings, numbers
  and numpy arrays only; anything else (a class, ``os.system``, ...) is
  refused before it is looked up, so nothing in the file runs.
- ``.pth`` / ``.bin``: :func:`m2f_mm.utils.checkpoint.read_checkpoint`
  (``torch.load(weights_only=True)``, one line per problem), as every tool.
- ``.safetensors``: the safetensors reader (no code at all).
"""
import codecs
import os
import pickle
from collections import OrderedDict
from typing import Dict

import numpy as np
import torch

from ..utils.checkpoint import read_checkpoint
from ..utils.errors import CheckpointError


class ConversionError(CheckpointError):
    """A checkpoint that cannot be converted; the message is one line."""


def _numpy_global(name: str):
    # numpy 2 moved numpy.core to numpy._core; pickles name either
    core = getattr(np, '_core', None)
    if core is None or not hasattr(core, 'multiarray'):
        from numpy.core import multiarray  # numpy < 2
    else:
        multiarray = core.multiarray
    return getattr(multiarray, name)


def _latin1_bytes(text, encoding='latin1'):
    """What protocol-2 pickles call ``_codecs.encode`` for: bytes from a
    latin-1 string. Other encodings are refused."""
    if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
        raise pickle.UnpicklingError(
            f'_codecs.encode called with {type(text).__name__}, {encoding!r}')
    return codecs.encode(text, 'latin1')


# the only globals a model-zoo pickle may name: how numpy pickles arrays,
# dtypes and scalars, OrderedDict (a dict), and bytes in protocol-2 pickles
_ALLOWED_GLOBALS = {
    ('numpy.core.multiarray', '_reconstruct'): lambda: _numpy_global('_reconstruct'),
    ('numpy._core.multiarray', '_reconstruct'): lambda: _numpy_global('_reconstruct'),
    ('numpy.core.multiarray', 'scalar'): lambda: _numpy_global('scalar'),
    ('numpy._core.multiarray', 'scalar'): lambda: _numpy_global('scalar'),
    ('numpy', 'ndarray'): lambda: np.ndarray,
    ('numpy', 'dtype'): lambda: np.dtype,
    ('collections', 'OrderedDict'): lambda: OrderedDict,
    ('_codecs', 'encode'): lambda: _latin1_bytes,
}


class _ArraysOnlyUnpickler(pickle.Unpickler):

    def find_class(self, module: str, name: str):
        make = _ALLOWED_GLOBALS.get((module, name))
        if make is None:
            raise pickle.UnpicklingError(
                f'refusing to load {module}.{name}: a model-zoo checkpoint '
                'holds only dicts, lists, strings, numbers and numpy arrays')
        return make()

    def persistent_load(self, pid):
        raise pickle.UnpicklingError('refusing persistent ids (not a model-zoo pickle)')


def load_d2_pickle(path: str) -> Dict:
    """The dict stored in a detectron2 model-zoo ``.pkl``, read with the
    allow-list above; raises :class:`ConversionError` (one line) for a
    pickle that names anything else or holds non-numeric arrays."""
    with open(path, 'rb') as f:
        try:
            # latin1: the model zoo's older pickles were written by Python 2
            obj = _ArraysOnlyUnpickler(f, encoding='latin1').load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError,
                AttributeError, IndexError, KeyError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ConversionError(f'{path}: not loaded: {msg}') from None
    if not isinstance(obj, dict):
        raise ConversionError(f'{path}: expected a dict, got {type(obj).__name__}')
    return obj


def numpy_state_to_torch(state: Dict, where: str) -> 'OrderedDict[str, torch.Tensor]':
    """name → numeric numpy array (or tensor) as name → tensor."""
    out = OrderedDict()
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            out[key] = value
            continue
        if not isinstance(value, np.ndarray) or value.dtype.kind not in 'biuf':
            kind = (f'an array of {value.dtype}' if isinstance(value, np.ndarray)
                    else type(value).__name__)
            raise ConversionError(f'{where}: {key!r} is {kind}, expected a numeric array')
        out[key] = torch.from_numpy(np.ascontiguousarray(value))
    return out


def load_torch_weights(path: str) -> Dict:
    """A ``.pth``/``.bin`` file read by the tools' one checkpoint loader."""
    try:
        return read_checkpoint(path)
    except CheckpointError as e:
        raise ConversionError(str(e)) from None


def load_safetensors(path: str) -> Dict:
    from safetensors.torch import load_file
    try:
        return load_file(path, device='cpu')
    except Exception as e:  # noqa: BLE001
        raise ConversionError(f'{path}: not a readable safetensors file: '
                              f'{str(e).splitlines()[0] if str(e) else type(e).__name__}'
                              ) from None


def load_d2_checkpoint(path: str) -> 'OrderedDict[str, torch.Tensor]':
    """The model weights of a detectron2 checkpoint: a model-zoo ``.pkl``
    (``{'model': {name: ndarray}}``) or a ``.pth`` saved by detectron2's
    trainer (``{'model': {name: tensor}, ...}``)."""
    if not os.path.isfile(path):
        raise ConversionError(f'{path}: no such file')
    if path.endswith('.pkl'):
        ckpt = load_d2_pickle(path)
    else:
        ckpt = load_torch_weights(path)
    if not isinstance(ckpt, dict):
        raise ConversionError(f'{path}: expected a dict, got {type(ckpt).__name__}')
    state = ckpt.get('model', ckpt)
    if not isinstance(state, dict) or not state:
        raise ConversionError(f'{path}: no model weights (expected a dict under "model")')
    return numpy_state_to_torch(state, path)
