"""Errors in a user's data, in one line: the file, the image, the field and
what is wrong with it.

Datasets and transforms of m2f_mm raise :class:`DataError` (made with
:func:`data_error`). Errors from other transforms are renamed the same way
by :class:`NamedErrorsCompose`, which the tools put around every dataset's
pipeline. The tools print :func:`one_line` of such an error instead of a
traceback unless ``--debug`` is given or ``M2F_MM_DEBUG=1`` is set.
"""
import os
import re
from typing import Optional

from mmengine.dataset import Compose

DEBUG_ENV = 'M2F_MM_DEBUG'


class DataError(ValueError):
    """Bad input data. ``kind`` is a short name of the problem (e.g.
    ``'unknown category'``) that tools/check_dataset.py groups by."""

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
    where = [f'image id {image}' if isinstance(image, int) else
             f'image {image}' if image is not None else None, field]
    where = ', '.join(w for w in where if w)
    return DataError(f'{file}: {where}: {problem}' if where else f'{file}: {problem}',
                     kind=kind)


def image_of(results: dict):
    """How errors name the image of a sample: its id, else its path."""
    if results.get('img_id') is not None:
        return int(results['img_id'])
    return results.get('img_path')


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ''
    return f'{type(exc).__name__}: {line}' if line else type(exc).__name__


def pipeline_error(results: dict, transform, exc: BaseException) -> DataError:
    """The DataError for ``exc`` raised by ``transform`` on a sample: names
    the label map when an annotation-loading step failed, else the image."""
    if isinstance(exc, DataError):
        return exc
    name = type(transform).__name__
    file = results.get('img_path') or '<unknown file>'
    if 'Annotation' in name and results.get('seg_map_path'):
        file = results['seg_map_path']
    kind = 'unreadable file' if name.startswith('Load') else 'pipeline error'
    return data_error(file, _first_line(exc), image_of(results),
                      f'pipeline step {name}', kind=kind)


class NamedErrorsCompose(Compose):
    """A dataset's pipeline whose errors name the sample's file, image and
    the failing transform (:func:`pipeline_error`); the traceback of the
    original error stays chained for ``--debug``."""

    def __init__(self, compose: Compose) -> None:
        self.transforms = list(compose.transforms)

    def __call__(self, data: dict):
        for t in self.transforms:
            info = {k: data.get(k) for k in ('img_path', 'img_id', 'seg_map_path')}
            try:
                data = t(data)
            except Exception as e:
                raise pipeline_error(info, t, e) from e
            if data is None:
                return None
        return data


def name_pipeline_errors(dataset) -> None:
    """Put :class:`NamedErrorsCompose` around the pipeline of ``dataset``
    and of the datasets it wraps (ConcatDataset, RepeatDataset, ...)."""
    pipeline = getattr(dataset, 'pipeline', None)
    if isinstance(pipeline, Compose) and not isinstance(pipeline, NamedErrorsCompose):
        dataset.pipeline = NamedErrorsCompose(pipeline)
    inner = getattr(dataset, 'datasets', None) or []
    if getattr(dataset, 'dataset', None) is not None:
        inner = [*inner, dataset.dataset]
    for d in inner:
        name_pipeline_errors(d)
