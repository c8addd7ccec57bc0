from .coco_metric import CocoMetric
from .panoptic_metric import CocoPanopticMetric
from .semseg_metric import SemSegIoUMetric

__all__ = ['CocoMetric', 'CocoPanopticMetric', 'SemSegIoUMetric']
