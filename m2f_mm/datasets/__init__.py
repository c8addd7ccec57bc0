from .coco import CocoDataset, CocoPanopticDataset, LoadPanopticAnnotations
from .transforms import *  # noqa: F401,F403

__all__ = ['CocoDataset', 'CocoPanopticDataset', 'LoadPanopticAnnotations']
