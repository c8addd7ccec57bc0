"""Build the head's targets in the dataloader workers."""
import warnings
from typing import Optional

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import InstanceData

from m2f_mm.models.utils.targets import (ClassCounts, mask_targets,
                                         resolve_class_counts)
from m2f_mm.registry import TRANSFORMS
from m2f_mm.utils.errors import DataError, data_error, image_of


@TRANSFORMS.register_module()
class BuildMaskTargets(BaseTransform):
    """One label and one binary mask per segment, as ``gt_segments``.

    Runs after MMDet's ``PackDetInputs`` or MMSeg's ``PackSegInputs`` and
    reads what they packed, so it works in unchanged pipelines:

    * MMDet panoptic: thing instances (``gt_instances``; crowd regions are
      not among them, as in MMDet) then one mask per stuff class present in
      ``gt_sem_seg`` (labels in [num_things, num_classes)).
    * MMDet instance (no ``gt_sem_seg``, or ``num_stuff_classes=0``): things.
    * MMSeg semantic (``gt_sem_seg`` only): one mask per class present;
      ``ignore_index`` is left out (``reduce_zero_label`` is applied by
      MMSeg's ``LoadAnnotations`` before).

    Segments whose area is below ``min_area`` pixels (by default: empty
    ones, e.g. cut away by a crop) are dropped. The head uses
    ``gt_segments`` when present instead of deriving targets itself; it
    checks the class counts they were built with (``gt_segments.metainfo``)
    against its own.

    The class counts are the head's: leave them out here. m2f_mm's tools
    (train.py, test.py, check_dataset.py) give the head's counts to this
    transform (:meth:`configure`); counts given here must equal the head's.
    Without counts the transform passes samples on unchanged and the head
    builds their targets (the same rule, in the main process).

    Args:
        num_things_classes, num_stuff_classes, num_classes: as the head's
            (optional, see above).
        ignore_index: void label in semantic maps.
        min_area: smallest kept segment, in pixels.
    """

    def __init__(self, num_things_classes: Optional[int] = None,
                 num_stuff_classes: Optional[int] = None,
                 num_classes: Optional[int] = None, ignore_index: int = 255,
                 min_area: int = 1) -> None:
        self.counts: Optional[ClassCounts] = None
        if (num_things_classes, num_stuff_classes, num_classes) != (None,) * 3:
            self.counts = resolve_class_counts(
                num_things_classes, num_stuff_classes, num_classes,
                owner='BuildMaskTargets')
        self.ignore_index = ignore_index
        self.min_area = min_area
        self._warned = False

    def configure(self, counts: ClassCounts, owner: str = 'the head') -> None:
        """Take the model's class counts; counts given in the config must
        be the same (a one-line error naming both otherwise)."""
        counts = ClassCounts(*counts)
        if self.counts is not None and self.counts != counts:
            raise DataError(f'BuildMaskTargets in the pipeline has {self.counts} '
                            f'but {owner} has {counts}; declare the counts in '
                            'the head only', kind='class mismatch')
        self.counts = counts

    def transform(self, results: dict) -> dict:
        if self.counts is None:
            if not self._warned:
                warnings.warn('BuildMaskTargets has no class counts (m2f_mm\'s tools '
                              'give it the head\'s): the head builds the targets')
                self._warned = True
            return results
        sample = results['data_samples']
        meta = sample.metainfo
        where = meta.get('img_path', '<unknown image>')
        image = image_of(meta)
        thing_labels = thing_masks = sem = None
        if 'gt_instances' in sample:
            thing_labels = sample.gt_instances.labels
            thing_masks = sample.gt_instances.masks
            if not isinstance(thing_masks, torch.Tensor):  # BitmapMasks
                thing_masks = torch.from_numpy(np.asarray(thing_masks.masks,
                                                          dtype=bool))
            if 'gt_sem_seg' in sample:
                sem = sample.gt_sem_seg.sem_seg[0]
        elif 'gt_sem_seg' in sample:
            sem = sample.gt_sem_seg.data[0]
            where = meta.get('seg_map_path') or where
            img_size = meta.get('img_shape')
            if img_size is None and 'inputs' in results:
                img_size = results['inputs'].shape[-2:]
            if img_size is not None and tuple(sem.shape) != tuple(img_size[:2]):
                raise data_error(where, f'the label map is {sem.shape[0]}x'
                                 f'{sem.shape[1]} but its image is '
                                 f'{img_size[0]}x{img_size[1]}', image,
                                 'gt_sem_seg', kind='size mismatch')
        else:
            raise data_error(where, 'BuildMaskTargets needs gt_instances or '
                             'gt_sem_seg; place it after PackDetInputs / '
                             'PackSegInputs in a training pipeline', image,
                             kind='pipeline error')
        labels, masks = mask_targets(thing_labels, thing_masks, sem, self.counts,
                                     self.ignore_index, self.min_area, where, image)
        sample.gt_segments = InstanceData(
            metainfo=dict(class_counts=tuple(self.counts)), labels=labels,
            masks=masks)
        return results

    def __repr__(self) -> str:
        counts = 'from the head' if self.counts is None else \
            f'num_things_classes={self.counts.things}, ' \
            f'num_stuff_classes={self.counts.stuff}'
        return (f'{self.__class__.__name__}({counts}, '
                f'ignore_index={self.ignore_index}, min_area={self.min_area})')
