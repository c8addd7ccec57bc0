"""Build the head's targets in the dataloader workers."""
from typing import Optional

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import InstanceData

from m2f_mm.models.utils.targets import mask_targets, resolve_class_counts
from m2f_mm.registry import TRANSFORMS


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
    ``gt_segments`` when present instead of deriving targets itself.

    Args:
        num_things_classes, num_stuff_classes: MMDet's split; for semantic
            data give ``num_classes`` alone.
        num_classes: number of classes (things + stuff).
        ignore_index: void label in semantic maps.
        min_area: smallest kept segment, in pixels.
    """

    def __init__(self, num_things_classes: Optional[int] = None,
                 num_stuff_classes: Optional[int] = None,
                 num_classes: Optional[int] = None, ignore_index: int = 255,
                 min_area: int = 1) -> None:
        self.counts = resolve_class_counts(num_things_classes, num_stuff_classes,
                                           num_classes, owner='BuildMaskTargets')
        self.ignore_index = ignore_index
        self.min_area = min_area

    def transform(self, results: dict) -> dict:
        sample = results['data_samples']
        meta = sample.metainfo
        where = meta.get('img_path', '<unknown image>')
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
                raise ValueError(f'{where}: the label map is {sem.shape[0]}x'
                                 f'{sem.shape[1]} but its image is '
                                 f'{img_size[0]}x{img_size[1]}')
        else:
            raise ValueError(f'{where}: BuildMaskTargets needs gt_instances or '
                             'gt_sem_seg; place it after PackDetInputs / '
                             'PackSegInputs in a training pipeline')
        labels, masks = mask_targets(thing_labels, thing_masks, sem, self.counts,
                                     self.ignore_index, self.min_area, where)
        sample.gt_segments = InstanceData(labels=labels, masks=masks)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_things_classes={self.counts.things}, '
                f'num_stuff_classes={self.counts.stuff}, '
                f'ignore_index={self.ignore_index}, '
                f'min_area={self.min_area})')
