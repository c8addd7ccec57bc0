from .coco_metric import CocoMetric
from .fast_coco_metric import FastCocoMetric
from .fast_panoptic_metric import FastCocoPanopticMetric
from .panoptic_metric import CocoPanopticMetric
from .semseg_metric import SemSegIoUMetric

__all__ = ['CocoMetric', 'CocoPanopticMetric', 'FastCocoMetric',
           'FastCocoPanopticMetric', 'SemSegIoUMetric']
