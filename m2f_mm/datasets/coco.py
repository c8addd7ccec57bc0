"""MMDetection's COCO datasets and panoptic loader with one-line errors for
broken data: a missing annotation file, an image id without its file, a
category id outside the metainfo, an undecodable panoptic PNG."""
import os.path as osp

import mmcv
from mmdet.datasets import CocoDataset as MMDetCocoDataset
from mmdet.datasets import CocoPanopticDataset as MMDetCocoPanopticDataset
from mmdet.datasets.transforms import \
    LoadPanopticAnnotations as MMDetLoadPanopticAnnotations
from mmengine.fileio import get

from m2f_mm.registry import DATASETS, TRANSFORMS

DATASET_HINT = "see the README's 'Datasets' section for how to get it"


def _is_local(path: str) -> bool:
    return '://' not in str(path)


def check_file(path: str, what: str) -> None:
    """One-line FileNotFoundError when a local ``path`` is missing."""
    if _is_local(path) and not osp.isfile(path):
        raise FileNotFoundError(f'{path}: {what} not found; {DATASET_HINT}')


class _CheckedCocoMixin:

    def load_data_list(self):
        check_file(self.ann_file, 'annotation file')
        return super().load_data_list()

    def _check_image(self, data_info: dict, raw: dict) -> None:
        path = data_info['img_path']
        if _is_local(path) and not osp.isfile(path):
            raise FileNotFoundError(
                f'{self.ann_file}: image id {raw["raw_img_info"]["img_id"]} '
                f'refers to {path}, which does not exist')


@DATASETS.register_module()
class CocoPanopticDataset(_CheckedCocoMixin, MMDetCocoPanopticDataset):
    """``mmdet.CocoPanopticDataset`` that names what is wrong in its data."""

    def parse_data_info(self, raw_data_info: dict):
        img_id = raw_data_info['raw_img_info']['img_id']
        for seg in raw_data_info['raw_ann_info']:  # segments, one per entry
            if seg['category_id'] not in self.cat2label:
                raise ValueError(
                    f'{self.ann_file}: image id {img_id}, segment {seg["id"]} '
                    f'has category_id {seg["category_id"]}, which is not among '
                    f'the metainfo classes {tuple(self.metainfo["classes"])}')
        data_info = super().parse_data_info(raw_data_info)
        self._check_image(data_info, raw_data_info)
        seg_map = data_info.get('seg_map_path')
        if seg_map and _is_local(seg_map) and not osp.isfile(seg_map):
            raise FileNotFoundError(
                f'{self.ann_file}: image id {img_id} refers to the panoptic PNG '
                f'{seg_map}, which does not exist')
        return data_info


@DATASETS.register_module()
class CocoDataset(_CheckedCocoMixin, MMDetCocoDataset):
    """``mmdet.CocoDataset`` that names what is wrong in its data.

    Annotations of categories that the JSON declares but the metainfo does not
    select are skipped (MMDet's way of training on a subset of classes); a
    category id the JSON does not declare at all is an error.
    """

    def parse_data_info(self, raw_data_info: dict):
        img_id = raw_data_info['raw_img_info']['img_id']
        for ann in raw_data_info['raw_ann_info']:
            if ann['category_id'] not in self.coco.cats:
                raise ValueError(
                    f'{self.ann_file}: image id {img_id}, annotation {ann["id"]} '
                    f'has category_id {ann["category_id"]}, which the file does '
                    f'not declare in its categories')
        data_info = super().parse_data_info(raw_data_info)
        self._check_image(data_info, raw_data_info)
        return data_info


@TRANSFORMS.register_module()
class LoadPanopticAnnotations(MMDetLoadPanopticAnnotations):
    """``mmdet.LoadPanopticAnnotations`` that names an undecodable PNG."""

    def _load_masks_and_semantic_segs(self, results: dict) -> None:
        try:
            super()._load_masks_and_semantic_segs(results)
        except Exception as e:  # mmcv returns None for a bad PNG; MMDet then fails obscurely
            path = results.get('seg_map_path')
            png = mmcv.imfrombytes(get(path, backend_args=self.backend_args))
            if png is None:
                raise ValueError(f'{path}: cannot decode the panoptic annotation '
                                 'PNG (corrupted or not an image)') from e
            raise
