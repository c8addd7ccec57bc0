"""MMDetection's CocoMetric with labels mapped to category ids through the
metainfo's ``category_ids`` (see :func:`use_label_order`)."""
from typing import Optional

from mmdet.evaluation.metrics import CocoMetric as _MMDetCocoMetric

from m2f_mm.registry import METRICS
from .panoptic_metric import use_label_order


@METRICS.register_module()
class CocoMetric(_MMDetCocoMetric):
    """``mmdet.CocoMetric``; when the dataset's metainfo has
    ``category_ids``, label i is category ``category_ids[i]`` whatever the
    annotation file calls it (ADE20K's instance file names its classes
    unlike its panoptic file). With ``thing_classes`` in the metainfo (a
    panoptic dataset's), the things' ids are the first ``len(thing_classes)``.
    Arguments as MMDetection's."""

    @property
    def dataset_meta(self) -> Optional[dict]:
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict) -> None:
        self._dataset_meta = dataset_meta
        ids = (dataset_meta or {}).get('category_ids')
        things = (dataset_meta or {}).get('thing_classes')
        if ids is not None and things is not None:
            # a panoptic model's instances: its labels below len(things) are the
            # things, the ids an instance file holds
            ids = ids[:len(things)]
        if ids is not None and getattr(self, '_coco_api', None) is not None:
            use_label_order(self._coco_api, ids, 'CocoMetric ann_file')
