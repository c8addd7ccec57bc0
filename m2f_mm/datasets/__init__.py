from .cityscapes import CityscapesPanopticDataset
from .coco import CocoDataset, CocoPanopticDataset, LoadPanopticAnnotations
from .mapillary import MapillaryVistasSemanticDataset
from .transforms import *  # noqa: F401,F403

__all__ = ['CityscapesPanopticDataset', 'MapillaryVistasSemanticDataset', 'CocoDataset', 'CocoPanopticDataset', 'LoadPanopticAnnotations']
