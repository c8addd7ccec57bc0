"""Errors of any transform of a dataset's pipeline renamed as one-line
:class:`~m2f_mm.utils.errors.DataError` s naming the sample's file, image and
the failing step; the tools put :class:`NamedErrorsCompose` around every
dataset's pipeline."""
from mmengine.dataset import Compose

from m2f_mm.utils.errors import DataError, data_error, image_of


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


def iter_datasets(dataset):
    """``dataset`` and the datasets it wraps (ConcatDataset, RepeatDataset,
    ClassBalancedDataset, ...), outermost first."""
    yield dataset
    inner = list(getattr(dataset, 'datasets', None) or [])
    if getattr(dataset, 'dataset', None) is not None:
        inner.append(dataset.dataset)
    for d in inner:
        yield from iter_datasets(d)


def name_pipeline_errors(dataset) -> None:
    """Put :class:`NamedErrorsCompose` around the pipeline of ``dataset``
    and of the datasets it wraps."""
    for d in iter_datasets(dataset):
        pipeline = getattr(d, 'pipeline', None)
        if isinstance(pipeline, Compose) and not isinstance(pipeline, NamedErrorsCompose):
            d.pipeline = NamedErrorsCompose(pipeline)
