"""The model's class counts given to the data side: ``BuildMaskTargets``
takes the head's, and a dataset whose metainfo disagrees with them stops
with one line naming both. Used by m2f_mm's runner (tools/train.py,
tools/test.py) on every dataloader it builds, and by tools/check_dataset.py.
"""
from typing import Optional, Tuple

from m2f_mm.models.utils.targets import (ClassCounts, metainfo_disagreement,
                                         resolve_class_counts)
from m2f_mm.utils.errors import DataError
from .pipeline_errors import iter_datasets

HEAD_KEYS = ('panoptic_head', 'decode_head')  # MMDet's, MMSeg's


def head_counts(model) -> Optional[Tuple[ClassCounts, str]]:
    """(counts, 'the <key>') of a built model's Mask2Former head, or None."""
    model = getattr(model, 'module', model)  # DDP wrappers
    for key in HEAD_KEYS:
        counts = getattr(getattr(model, key, None), 'counts', None)
        if counts is not None:
            return ClassCounts(*counts), f'the {key}'
    return None


def head_counts_from_cfg(model_cfg: dict) -> Optional[Tuple[ClassCounts, str]]:
    """The same from a model config, resolved as the head resolves them."""
    from m2f_mm.models.heads.mask2former_head import Mask2FormerHead
    for key in HEAD_KEYS:
        head = (model_cfg or {}).get(key)
        if head and str(head.get('type', '')).endswith('Mask2FormerHead'):
            counts = resolve_class_counts(
                head.get('num_things_classes'), head.get('num_stuff_classes'),
                head.get('num_classes'), default=Mask2FormerHead.DEFAULT_CLASS_COUNTS)
            return counts, f'the {key}'
    return None


def apply_class_counts(dataset, counts: ClassCounts, owner: str = 'the head') -> None:
    """Check ``dataset``'s metainfo against ``counts`` (one-line DataError
    naming both) and give ``counts`` to the ``BuildMaskTargets`` of its
    pipelines (and of the datasets it wraps)."""
    for d in iter_datasets(dataset):
        meta = getattr(d, 'metainfo', None) or {}
        why = metainfo_disagreement(counts, meta)
        if why is not None:
            source = getattr(d, 'ann_file', '') or getattr(d, 'data_root', '') or ''
            name = type(d).__name__ + (f' ({source})' if source else '')
            raise DataError(f'{name}: {why} but {owner} has {counts}; declare '
                            'the counts in the head to match the dataset',
                            kind='class mismatch')
        for t in getattr(getattr(d, 'pipeline', None), 'transforms', []):
            if type(t).__name__ == 'BuildMaskTargets':
                t.configure(counts, owner)
