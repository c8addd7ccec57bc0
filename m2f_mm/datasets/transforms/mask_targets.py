"""Build the head's targets in the dataloader workers."""
from typing import Optional

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import InstanceData

from m2f_mm.models.utils.targets import panoptic_targets, semantic_to_masks
from m2f_mm.registry import TRANSFORMS
from ..errors import data_error, image_of


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

    def __init__(self, num_things_classes: int = 0,
                 num_stuff_classes: Optional[int] = None,
                 num_classes: Optional[int] = None, ignore_index: int = 255,
                 min_area: int = 1) -> None:
        if num_classes is None:
            if num_stuff_classes is None:
                raise ValueError('BuildMaskTargets needs num_classes or '
                                 'num_things_classes + num_stuff_classes')
            num_classes = num_things_classes + num_stuff_classes
        self.num_things = num_things_classes
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.min_area = min_area

    def transform(self, results: dict) -> dict:
        sample = results['data_samples']
        where = sample.metainfo.get('img_path', '<unknown image>')
        image = image_of(sample.metainfo)
        field = 'gt_instances'
        if 'gt_instances' in sample:
            inst = sample.gt_instances
            masks = inst.masks
            if not isinstance(masks, torch.Tensor):
                masks = torch.from_numpy(np.asarray(masks.masks, dtype=bool))
            sem = None
            if 'gt_sem_seg' in sample and self.num_things < self.num_classes:
                sem = sample.gt_sem_seg.sem_seg[0]
                if masks.shape[-2:] != sem.shape:
                    raise data_error(
                        where, f'instance masks are {tuple(masks.shape[-2:])} '
                        f'but the segmentation map is {tuple(sem.shape)}',
                        image, 'gt_instances.masks', kind='size mismatch')
            labels, masks = panoptic_targets(inst.labels, masks, sem,
                                             self.num_things, self.num_classes)
        elif 'gt_sem_seg' in sample:
            sem = sample.gt_sem_seg.data[0]
            where = sample.metainfo.get('seg_map_path') or where
            field = 'gt_sem_seg'
            img_size = sample.metainfo.get('img_shape')
            if img_size is None and 'inputs' in results:
                img_size = results['inputs'].shape[-2:]
            if img_size is not None and tuple(sem.shape) != tuple(img_size[:2]):
                raise data_error(where, f'the label map is {sem.shape[0]}x'
                                 f'{sem.shape[1]} but its image is '
                                 f'{img_size[0]}x{img_size[1]}', image, field,
                                 kind='size mismatch')
            labels, masks = semantic_to_masks(sem, 0, 1 << 30)
            keep = labels != self.ignore_index
            labels, masks = labels[keep], masks[keep]
        else:
            raise data_error(where, 'BuildMaskTargets needs gt_instances or '
                             'gt_sem_seg; place it after PackDetInputs / '
                             'PackSegInputs in a training pipeline', image,
                             kind='pipeline error')
        bad = (labels < 0) | (labels >= self.num_classes)
        if bad.any():
            raise data_error(where, f'label {int(labels[bad][0])} is outside '
                             f'[0, {self.num_classes}) (num_classes='
                             f'{self.num_classes})', image, field,
                             kind='label out of range')
        if self.min_area > 0 and len(labels):
            keep = masks.flatten(1).sum(1) >= self.min_area
            labels, masks = labels[keep], masks[keep]
        sample.gt_segments = InstanceData(labels=labels.long(), masks=masks.bool())
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_things_classes={self.num_things}, '
                f'num_classes={self.num_classes}, ignore_index={self.ignore_index}, '
                f'min_area={self.min_area})')
