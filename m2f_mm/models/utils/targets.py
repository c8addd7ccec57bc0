"""The rules that turn annotations into Mask2Former's targets (one label and
one binary mask per segment) and the class counts they depend on. One home
for both: :class:`~m2f_mm.datasets.transforms.BuildMaskTargets` (in the
dataloader workers) and the head (when a sample comes without
``gt_segments``) call :func:`mask_targets`."""
from typing import NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor

from m2f_mm.utils.errors import data_error


class ClassCounts(NamedTuple):
    things: int
    stuff: int

    @property
    def total(self) -> int:
        return self.things + self.stuff

    def __str__(self) -> str:
        return f'{self.things} thing + {self.stuff} stuff classes'


def metainfo_disagreement(counts: ClassCounts, metainfo: dict) -> Optional[str]:
    """Why a dataset's ``metainfo`` does not fit a model with ``counts``,
    or None when it does: its ``classes`` must number ``counts.total`` and,
    when it has them, its ``thing_classes`` ``counts.things``."""
    classes = metainfo.get('classes')
    things = metainfo.get('thing_classes')
    if classes is None:
        return None
    if len(classes) != counts.total or (
            things is not None and counts.stuff > 0 and len(things) != counts.things):
        split = (f' ({len(things)} thing_classes + '
                 f'{len(metainfo.get("stuff_classes") or ())} stuff_classes)'
                 if things is not None else '')
        return f'its metainfo has {len(classes)} classes{split}'
    return None


def resolve_class_counts(num_things_classes: Optional[int] = None,
                         num_stuff_classes: Optional[int] = None,
                         num_classes: Optional[int] = None,
                         owner: str = 'Mask2FormerHead',
                         default: Optional[Tuple[int, int]] = None
                         ) -> ClassCounts:
    """Things and stuff from what a config gives.

    ``num_classes`` alone means semantic segmentation (every class stuff);
    things with ``num_classes`` leave the rest to stuff; things and stuff
    give the total. Counts that disagree, or none at all without a
    ``default`` (things, stuff), are a one-line error naming ``owner``.
    """
    given = dict(num_things_classes=num_things_classes,
                 num_stuff_classes=num_stuff_classes, num_classes=num_classes)
    bad = {k: v for k, v in given.items() if v is not None and
           (not isinstance(v, int) or v < 0)}
    if bad:
        raise ValueError(f'{owner}: class counts must be non-negative integers, '
                         f'got {bad}')
    things, stuff = num_things_classes, num_stuff_classes
    if things is None and stuff is None and num_classes is None:
        if default is None:
            raise ValueError(f'{owner}: give num_classes (semantic) or '
                             'num_things_classes and num_stuff_classes')
        things, stuff = default
    elif num_classes is None:
        things, stuff = things or 0, stuff or 0
    elif things is None and stuff is None:
        things, stuff = 0, num_classes
    else:
        things = num_classes - stuff if things is None else things
        stuff = num_classes - things if stuff is None else stuff
        if things + stuff != num_classes or min(things, stuff) < 0:
            raise ValueError(
                f'{owner}: num_things_classes ({num_things_classes}) + '
                f'num_stuff_classes ({num_stuff_classes}) != num_classes '
                f'({num_classes})')
    if things + stuff == 0:
        raise ValueError(f'{owner}: there must be at least one class')
    return ClassCounts(things, stuff)


def mask_targets(thing_labels: Optional[Tensor], thing_masks: Optional[Tensor],
                 sem_seg: Optional[Tensor], counts: ClassCounts,
                 ignore_index: int = 255, min_area: int = 1,
                 where: str = '<unknown image>',
                 image: Union[int, str, None] = None) -> Tuple[Tensor, Tensor]:
    """One label and one mask per segment of an image.

    * Instances (``thing_labels`` given): the things, then, when there is
      stuff and a ``sem_seg``, one mask per stuff class present in it (values
      in [things, total)); crowd regions are not among MMDet's instances.
    * Semantic (no instances): one mask per class present in ``sem_seg``,
      ``ignore_index`` left out.

    Segments below ``min_area`` pixels (by default: empty ones, e.g. cut
    away by a crop) are dropped. Labels outside [0, total) and instance
    masks whose size differs from ``sem_seg``'s are a one-line
    :class:`~m2f_mm.utils.errors.DataError` naming ``where`` (the file) and
    ``image`` (its id or path).

    Args:
        thing_labels: (T,); thing_masks: (T, H, W) bool.
        sem_seg: (H, W) integer label map.

    Returns:
        labels (N,) long, masks (N, H, W) bool.
    """
    if thing_labels is not None:
        labels, masks = thing_labels.long(), thing_masks.bool()
        if sem_seg is not None and counts.stuff > 0:
            if masks.shape[-2:] != sem_seg.shape:
                raise data_error(
                    where, f'instance masks are {tuple(masks.shape[-2:])} but '
                    f'the segmentation map is {tuple(sem_seg.shape)}', image,
                    'gt_instances.masks', kind='size mismatch')
            stuff_labels, stuff_masks = semantic_to_masks(
                sem_seg, counts.things, counts.total)
            labels = torch.cat([labels, stuff_labels.to(labels.device)])
            masks = torch.cat([masks, stuff_masks.to(masks.device)])
    elif sem_seg is not None:
        labels, masks = semantic_to_masks(sem_seg, 0, 1 << 30)
        keep = labels != ignore_index
        labels, masks = labels[keep], masks[keep]
    else:
        raise data_error(where, 'no instances and no segmentation map to '
                         'build targets from', image, kind='pipeline error')
    bad = (labels < 0) | (labels >= counts.total)
    if bad.any():
        first = int(bad.nonzero()[0])
        field = ('gt_instances.labels' if thing_labels is not None
                 and first < len(thing_labels) else 'gt_sem_seg')
        raise data_error(where, f'label {int(labels[first])} is outside '
                         f'[0, {counts.total}) (num_classes={counts.total})',
                         image, field, kind='label out of range')
    if min_area > 0 and len(labels):
        keep = masks.flatten(1).sum(1) >= min_area
        labels, masks = labels[keep], masks[keep]
    return labels, masks


def semantic_to_masks(sem_seg: Tensor, label_min: int, label_max: int
                      ) -> Tuple[Tensor, Tensor]:
    """Split a label map into one mask per present label in
    [label_min, label_max); other values (ignore, things) are left out.

    Args:
        sem_seg: (H, W) integer map.

    Returns:
        labels (N,) long, ascending; masks (N, H, W) bool.
    """
    labels = torch.unique(sem_seg)
    labels = labels[(labels >= label_min) & (labels < label_max)].long()
    masks = sem_seg[None] == labels[:, None, None].to(sem_seg.dtype)
    return labels, masks
