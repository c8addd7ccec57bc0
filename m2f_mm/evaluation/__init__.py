from .semseg_metric import SemSegIoUMetric

__all__ = ['SemSegIoUMetric']
