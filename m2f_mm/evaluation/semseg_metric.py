"""MMSeg's IoUMetric for detectors' samples."""
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
    are logged as ``sem_seg/mIoU`` etc."""

    default_prefix = 'sem_seg'

    def process(self, data_batch: dict, data_samples) -> None:
        samples = []
        for s in data_samples:
            s = dict(s)
            s['pred_sem_seg'] = dict(data=_pixels(s['pred_sem_seg']))
            if 'gt_sem_seg' in s:
                s['gt_sem_seg'] = dict(data=_pixels(s['gt_sem_seg']))
            samples.append(s)
        super().process(data_batch, samples)
