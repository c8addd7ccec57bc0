"""MMSeg's IoUMetric for detectors' samples."""
from typing import Dict

from mmseg.evaluation.metrics import IoUMetric

from m2f_mm.registry import METRICS


def _pixels(field):
    """The map of a PixelData-as-dict: MMSeg names it ``data``, MMDet
    ``sem_seg``."""
    return field['data'] if 'data' in field else field['sem_seg']


@METRICS.register_module()
class SemSegIoUMetric(IoUMetric):
    """mIoU / aAcc of ``pred_sem_seg`` against ``gt_sem_seg`` for samples
    packed by MMDetection (whose semantic maps are stored as ``sem_seg``),
    as well as MMSegmentation's. Arguments as MMSeg's ``IoUMetric``; results
    are logged as ``sem_seg/mIoU`` etc.

    Args:
        classwise: also return the IoU of each class, as ``IoU_<class>``
            (percent; NaN for a class absent from both maps).
        **kwargs: MMSeg's ``IoUMetric`` arguments.
    """

    default_prefix = 'sem_seg'

    def __init__(self, classwise: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.classwise = classwise

    def process(self, data_batch: dict, data_samples) -> None:
        samples = []
        for s in data_samples:
            s = dict(s)
            s['pred_sem_seg'] = dict(data=_pixels(s['pred_sem_seg']))
            if 'gt_sem_seg' in s:
                s['gt_sem_seg'] = dict(data=_pixels(s['gt_sem_seg']))
            samples.append(s)
        super().process(data_batch, samples)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        metrics = super().compute_metrics(results)
        if self.classwise and results:
            # results: per image (intersect, union, pred area, label area), (K,) each
            intersect = sum(r[0] for r in results).double()
            union = sum(r[1] for r in results).double()
            iou = (100 * intersect / union).tolist()  # 0/0: NaN
            for name, value in zip(self.dataset_meta['classes'], iou):
                metrics[f'IoU_{name}'] = round(value, 2)
        return metrics
