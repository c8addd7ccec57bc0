"""Cityscapes panoptic in the form cityscapesscripts' ``createPanopticImgs``
writes it: ``gtFine/cityscapes_panoptic_{split}.json`` lists images as
``<city>_..._leftImg8bit.png`` (stored under ``leftImg8bit/<split>/<city>/``)
and their PNGs as ``<city>_..._gtFine_panoptic.png``. MMDetection's
panoptic dataset takes the image's own name and folder for both.
"""
import os.path as osp

from m2f_mm.registry import DATASETS
from .coco import CocoPanopticDataset

IMAGE_SUFFIX = '_leftImg8bit.png'
PANOPTIC_SUFFIX = '_gtFine_panoptic.png'


@DATASETS.register_module()
class CityscapesPanopticDataset(CocoPanopticDataset):
    """:class:`m2f_mm.CocoPanopticDataset` with Cityscapes' file layout:
    images in per-city folders, panoptic PNGs named ``*_gtFine_panoptic.png``.
    The category ids are Cityscapes' label ids (7..33); give the things-first
    metainfo of ``configs/_base_/datasets/cityscapes_panoptic.py``."""

    def parse_data_info(self, raw_data_info: dict):
        info = raw_data_info['raw_img_info']
        name = info['file_name']
        if name.endswith(IMAGE_SUFFIX) and '/' not in name:
            city = name.split('_', 1)[0]
            info = dict(info, file_name=osp.join(city, name))
            raw_data_info = dict(raw_data_info, raw_img_info=info)
        return super().parse_data_info(raw_data_info)

    def _check_files(self, data_info: dict):
        seg = data_info.get('seg_map_path')
        if seg and seg.endswith(IMAGE_SUFFIX):
            # MMDet named the PNG after the image, in the image's city folder
            data_info['seg_map_path'] = osp.join(
                self.data_prefix['seg'],
                osp.basename(seg)[:-len(IMAGE_SUFFIX)] + PANOPTIC_SUFFIX)
        return super()._check_files(data_info)
