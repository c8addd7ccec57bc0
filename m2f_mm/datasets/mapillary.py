"""Mapillary Vistas v1.2 semantic labels as released
(``{training,validation}/labels/*.png``, values 0..65, 65 = 'Unlabeled')."""
from mmseg.datasets import BaseSegDataset

from m2f_mm.registry import DATASETS
from .categories import MAPILLARY_VISTAS_CATEGORIES

_CLASSES = tuple(c[1] for c in MAPILLARY_VISTAS_CATEGORIES)


@DATASETS.register_module()
class MapillaryVistasSemanticDataset(BaseSegDataset):
    """MMSeg dataset of the 66 label values. Give ``metainfo=dict(classes=
    <the 65 without 'Unlabeled'>)`` (as ``configs/_base_/datasets/
    mapillary_semantic.py`` does): MMSeg then maps 'Unlabeled' (65) to 255,
    the ignore index, as the original ignores 65."""

    METAINFO = dict(classes=_CLASSES + ('Unlabeled',))

    def __init__(self, img_suffix: str = '.jpg', seg_map_suffix: str = '.png',
                 **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         **kwargs)
