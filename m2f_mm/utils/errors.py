"""Errors a user can act on, in one line: for data, the file, the image, the
field and what is wrong with it; for training, the iteration and the image.

Datasets, transforms and the head raise :class:`DataError` (made with
:func:`data_error`); errors from other transforms are renamed the same way
(:mod:`m2f_mm.datasets.pipeline_errors`). The tools print :func:`one_line`
of such an error instead of a traceback unless ``--debug`` is given or
``M2F_MM_DEBUG=1`` is set. Plain Python: importable from anywhere in m2f_mm.
"""
import os
import re
from typing import Optional

DEBUG_ENV = 'M2F_MM_DEBUG'


class DataError(ValueError):
    """Bad input data, or class counts that disagree with it or with each
    other. ``kind`` is a short name of the problem (e.g. ``'unknown
    category'``) that tools/check_dataset.py groups by."""

    def __init__(self, message: str, kind: str = 'data error') -> None:
        # one positional argument: torch's DataLoader and mmengine's registry
        # re-create exceptions as ``type(e)(new_message)``
        super().__init__(message)
        self.kind = kind


def data_error(file, problem: str, image=None, field: Optional[str] = None,
               kind: str = 'data error') -> DataError:
    """``'<file>: image <image>, <field>: <problem>'`` as a DataError.

    Args:
        file: the file that holds the bad data (annotation file, PNG, image).
        problem: what is wrong, without a trailing period.
        image: an image id (int) or an image name (str); ``None`` to omit.
        field: the key or transform concerned; ``None`` to omit.
    """
    if isinstance(image, str) and image == str(file):
        image = None  # the file is the image
    where = [f'image id {image}' if isinstance(image, int) or (
        isinstance(image, str) and '/' not in image and '.' not in image) else
             f'image {image}' if image is not None else None, field]
    where = ', '.join(w for w in where if w)
    return DataError(f'{file}: {where}: {problem}' if where else f'{file}: {problem}',
                     kind=kind)


def image_of(results: dict):
    """How errors name the image of a sample: its id, else its path."""
    img_id = results.get('img_id')
    if img_id is not None:
        # Cityscapes' panoptic files use string ids ('aachen_000000_000019')
        return int(img_id) if str(img_id).lstrip('-').isdigit() else str(img_id)
    return results.get('img_path')


def describe_image(meta: dict) -> str:
    """``'image id 4 (data/x/4.jpg)'``, or ``'image data/x/4.jpg'``."""
    img_id, path = meta.get('img_id'), meta.get('img_path')
    if img_id is not None:
        return f'image id {img_id}' + (f' ({path})' if path else '')
    return f'image {path}' if path else 'an image'


def debug_enabled(flag: bool = False) -> bool:
    """``--debug`` or ``M2F_MM_DEBUG=1``: show tracebacks of data errors."""
    return flag or os.environ.get(DEBUG_ENV, '') not in ('', '0', 'false', 'False')


# ``class `X` in pkg/mod.py: `` is what mmengine's registry prepends when a
# build fails; a DataLoader worker sends the whole traceback as the message.
_BUILD_PREFIX = re.compile(r'^(class `[\w.]+` in [\w/.\\-]+\.py: )+')


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` without the traceback text a DataLoader worker
    wraps around it and without the registry's build prefixes."""
    msg = str(exc)
    if 'Original Traceback' in msg or '\n' in msg:
        lines = [line for line in msg.splitlines() if line.strip()]
        last = lines[-1] if lines else msg
        for name in (type(exc).__name__, f'{type(exc).__module__}.{type(exc).__qualname__}'):
            if last.startswith(name + ': '):
                last = last[len(name) + 2:]
        msg = last
    return _BUILD_PREFIX.sub('', msg.strip())


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, would run code, or is not the
    model's (:mod:`m2f_mm.utils.checkpoint`); the message is one line that
    starts with the file."""


class InputError(ValueError):
    """An input of tools/demo.py or tools/onnx_infer.py that is not an
    image (:mod:`m2f_mm.utils.images`); one line starting with the path."""


class NonFiniteError(FloatingPointError):
    """A prediction or matching cost with NaN or inf, named by iteration
    and image (instead of scipy's "cost matrix is infeasible")."""


def current_iteration() -> Optional[int]:
    """The Runner's iteration (1-based, as its logs count), if one runs."""
    try:
        from mmengine.logging import MessageHub
        it = MessageHub.get_current_instance().get_info('iter')
    except Exception:  # no runner, or mmengine without a message hub
        return None
    return None if it is None else int(it) + 1
