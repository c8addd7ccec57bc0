"""MMDetection's ``Mask2Former`` detector, able to return semantic results.

The architecture is MMDet's own; the only change is that the fusion head's
``sem_results`` go to ``pred_sem_seg`` instead of failing MMDet's assert, so
one forward can give panoptic, instance and semantic results.
"""
from mmdet.models.detectors import Mask2Former as MMDetMask2Former

from m2f_mm.registry import MODELS


@MODELS.register_module()
class Mask2Former(MMDetMask2Former):

    def add_pred_to_datasample(self, data_samples, results_list):
        for data_sample, results in zip(data_samples, results_list):
            if 'pan_results' in results:
                data_sample.pred_panoptic_seg = results['pan_results']
            if 'ins_results' in results:
                data_sample.pred_instances = results['ins_results']
            if 'sem_results' in results:
                data_sample.pred_sem_seg = results['sem_results']
        return data_samples
