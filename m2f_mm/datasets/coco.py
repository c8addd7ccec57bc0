"""MMDetection's COCO datasets and panoptic loader with one-line errors for
broken data: a missing annotation file, an image id without its file, a
category id outside the metainfo, an undecodable panoptic PNG or one whose
size differs from its image.

Every error names the annotation file (or PNG), the image id and the field
(:func:`m2f_mm.utils.errors.data_error`). tools/check_dataset.py sets
``collect_problems`` to a list to get all of them at once: images with a
problem are then left out of the data list instead of stopping the load.
"""
import os.path as osp
from typing import Dict, List, Optional

import mmcv
from mmdet.datasets import CocoDataset as MMDetCocoDataset
from mmdet.datasets import CocoPanopticDataset as MMDetCocoPanopticDataset
from mmdet.datasets.transforms import \
    LoadPanopticAnnotations as MMDetLoadPanopticAnnotations
from mmengine.fileio import get

from m2f_mm.registry import DATASETS, TRANSFORMS
from m2f_mm.utils.errors import DataError, data_error, image_of

DATASET_HINT = "see the README's 'Datasets' section for how to get it"


def _is_local(path: str) -> bool:
    return '://' not in str(path)


def check_file(path: str, what: str) -> None:
    """One-line FileNotFoundError when a local ``path`` is missing."""
    if _is_local(path) and not osp.isfile(path):
        raise FileNotFoundError(f'{path}: {what} not found; {DATASET_HINT}')


class _CheckedCocoMixin:
    """Checks shared by the COCO datasets; ``parse_data_info`` of each calls
    :meth:`_problems_of` and :meth:`_check_files`."""

    #: a list to collect DataErrors into (and skip the images concerned)
    #: instead of raising the first one
    collect_problems: Optional[List[DataError]] = None
    #: images left out of the data list for their problems (when collecting)
    num_skipped: int = 0

    def load_data_list(self):
        check_file(self.ann_file, 'annotation file')
        # positions in the file, for naming fields: annotations[j]
        self._ann_index: Optional[Dict] = None
        self._categories_checked = False
        self.num_skipped = 0
        data_list = [d for d in super().load_data_list() if d is not None]
        self._ann_index = None
        return data_list

    def _report(self, errors: List[DataError]) -> bool:
        """Raise the first of ``errors`` or collect them all; True when
        there were any (the image is then skipped)."""
        if errors and self.collect_problems is None:
            raise errors[0]
        if self.collect_problems is not None:
            self.collect_problems.extend(errors)
        return bool(errors)

    def _skip_image(self, errors: List[DataError]) -> bool:
        """:meth:`_report`; counts the image as skipped when it has errors."""
        skip = self._report(errors)
        self.num_skipped += int(skip)
        return skip

    def _check_categories(self) -> None:
        """Once per load: MMDet gives label i to the i-th category of the
        file among the metainfo classes; it must be metainfo class i, and in
        panoptic data a thing exactly when the metainfo says so."""
        if self._categories_checked:
            return
        self._categories_checked = True
        cats = {c['id']: c for c in self.coco.dataset.get('categories', [])}
        if self.metainfo.get('category_ids') is not None:
            self._report(self._use_category_ids(cats))
            return
        file_names = [cats[i]['name'] for i in self.cat_ids]
        classes = list(self.metainfo['classes'])
        missing = [c for c in classes if c not in file_names]
        errors = []
        if missing:
            errors.append(data_error(
                self.ann_file, f'metainfo classes {missing} are not category '
                f'names of the file ({[c["name"] for c in cats.values()]})',
                field='categories', kind='class mismatch'))
        elif file_names != classes:
            errors.append(data_error(
                self.ann_file, f'the file lists the metainfo classes in the '
                f'order {file_names}, the metainfo in {classes}: labels follow '
                'the file; list the metainfo classes in its order',
                field='categories', kind='class mismatch'))
        things = self.metainfo.get('thing_classes')
        if not errors and things is not None and 'isthing' in next(iter(cats.values()), {}):
            wrong = [c['name'] for c in (cats[i] for i in self.cat_ids)
                     if bool(c.get('isthing')) != (c['name'] in things)]
            if wrong or classes[:len(things)] != list(things):
                errors.append(data_error(
                    self.ann_file, f'categories {wrong or classes} disagree with the '
                    f'metainfo thing_classes {tuple(things)} (isthing in the file, '
                    'or things not listed first in classes)',
                    field='categories', kind='class mismatch'))
        self._report(errors)

    def _use_category_ids(self, cats: Dict) -> List[DataError]:
        """Labels from the metainfo's ``category_ids`` (label i is category
        ``category_ids[i]``) instead of the file's order: datasets whose
        files interleave things and stuff get things-first labels
        (:mod:`m2f_mm.datasets.categories`). Names are not compared: the
        ids say which category is meant."""
        ids = list(self.metainfo['category_ids'])
        classes = list(self.metainfo['classes'])
        if len(ids) != len(classes):
            return [data_error(self.ann_file, f'the metainfo has {len(ids)} category_ids '
                               f'for {len(classes)} classes', field='categories',
                               kind='class mismatch')]
        missing = [i for i in ids if i not in cats]
        if missing:
            return [data_error(self.ann_file, f'metainfo category_ids {missing} are not '
                               f'among the file\'s categories {sorted(cats)}',
                               field='categories', kind='class mismatch')]
        things = self.metainfo.get('thing_classes')
        if things is not None and all('isthing' in cats[i] for i in ids):
            wrong = [cats[i]['name'] for k, i in enumerate(ids)
                     if bool(cats[i]['isthing']) != (k < len(things))]
            if wrong:
                return [data_error(self.ann_file, f'categories {wrong} disagree with the '
                                   f'metainfo: its first {len(things)} category_ids are '
                                   'the things (isthing in the file)',
                                   field='categories', kind='class mismatch')]
        self.cat_ids = ids
        self.cat2label = {cat_id: label for label, cat_id in enumerate(ids)}
        return []

    def _annotation_index(self, key: str) -> Dict:
        """``annotations[j][key] -> j`` over the annotation file."""
        if self._ann_index is None:
            anns = self.coco.dataset.get('annotations', [])
            self._ann_index = {a[key]: j for j, a in enumerate(anns)}
        return self._ann_index

    def _image_field(self, img_id) -> str:
        images = self.coco.dataset.get('images', [])
        index = next((j for j, im in enumerate(images) if im['id'] == img_id), None)
        return f'images[{index}].file_name' if index is not None else 'file_name'

    def _check_files(self, data_info: dict) -> List[DataError]:
        img_id = data_info['img_id']
        errors = []
        path = data_info['img_path']
        if _is_local(path) and not osp.isfile(path):
            errors.append(data_error(
                self.ann_file, f'refers to {path}, which does not exist',
                img_id, self._image_field(img_id), kind='missing file'))
        seg_map = data_info.get('seg_map_path')
        if seg_map and _is_local(seg_map) and not osp.isfile(seg_map):
            errors.append(data_error(
                self.ann_file, f'its panoptic PNG {seg_map} does not exist',
                img_id, self._image_field(img_id), kind='missing file'))
        return errors


@DATASETS.register_module()
class CocoPanopticDataset(_CheckedCocoMixin, MMDetCocoPanopticDataset):
    """``mmdet.CocoPanopticDataset`` that names what is wrong in its data."""

    def parse_data_info(self, raw_data_info: dict):
        self._check_categories()
        img_id = raw_data_info['raw_img_info']['img_id']
        # MMDet's COCOPanoptic returns, for each segment id of this image,
        # the segments of every image that uses that id: keep this image's
        segments = [s for s in raw_data_info['raw_ann_info']
                    if s['image_id'] == img_id]
        if self._skip_image(self._segment_problems(img_id, segments)):
            return None
        data_info = super().parse_data_info(
            dict(raw_data_info, raw_ann_info=segments))
        if self._skip_image(self._check_files(data_info)):
            return None
        return data_info

    def _segment_problems(self, img_id, segments: List[dict]) -> List[DataError]:
        errors = []
        j = self._annotation_index('image_id').get(img_id)
        for k, seg in enumerate(segments):
            cat = seg['category_id']
            if cat in self.cat2label:
                continue
            declared = self.coco.cats.get(cat)
            why = (f"category_id {cat} ('{declared['name']}') is not among the "
                   f'metainfo classes {tuple(self.metainfo["classes"])}' if declared
                   else f"category_id {cat} is not among the file's categories")
            errors.append(data_error(
                self.ann_file, why, img_id,
                f'annotations[{j}].segments_info[{k}] (segment id {seg["id"]})',
                kind='unknown category'))
        return errors


@DATASETS.register_module()
class CocoDataset(_CheckedCocoMixin, MMDetCocoDataset):
    """``mmdet.CocoDataset`` that names what is wrong in its data.

    Annotations of categories that the JSON declares but the metainfo does not
    select are skipped (MMDet's way of training on a subset of classes); a
    category id the JSON does not declare at all is an error.
    """

    def parse_data_info(self, raw_data_info: dict):
        self._check_categories()
        img_id = raw_data_info['raw_img_info']['img_id']
        errors = []
        for ann in raw_data_info['raw_ann_info']:
            if ann['category_id'] not in self.coco.cats:
                j = self._annotation_index('id').get(ann['id'])
                errors.append(data_error(
                    self.ann_file, f'category_id {ann["category_id"]} is not '
                    "among the file's categories", img_id,
                    f'annotations[{j}] (annotation id {ann["id"]})',
                    kind='unknown category'))
        if self._skip_image(errors):
            return None
        data_info = super().parse_data_info(raw_data_info)
        if self._skip_image(self._check_files(data_info)):
            return None
        return data_info


@TRANSFORMS.register_module()
class LoadPanopticAnnotations(MMDetLoadPanopticAnnotations):
    """``mmdet.LoadPanopticAnnotations`` that names an undecodable PNG and
    one whose size differs from its image."""

    def _load_masks_and_semantic_segs(self, results: dict) -> None:
        path = results.get('seg_map_path')
        if path is None:
            return
        try:
            super()._load_masks_and_semantic_segs(results)
        except Exception as e:  # mmcv returns None for a bad PNG; MMDet then fails obscurely
            png = mmcv.imfrombytes(get(path, backend_args=self.backend_args))
            if png is None:
                raise data_error(path, 'cannot decode the panoptic annotation '
                                 'PNG (corrupted or not an image)',
                                 image_of(results), 'seg_map_path',
                                 kind='unreadable file') from e
            self._check_size(results, png.shape[:2])  # MMDet's BitmapMasks fails
            raise
        # without things MMDet builds the maps at the PNG's size silently
        if 'gt_seg_map' in results:
            self._check_size(results, results['gt_seg_map'].shape[-2:])

    @staticmethod
    def _check_size(results: dict, size) -> None:
        ori = tuple(int(s) for s in results['ori_shape'][:2])
        if tuple(int(s) for s in size) != ori:
            raise data_error(results['seg_map_path'], f'the panoptic PNG is '
                             f'{size[0]}x{size[1]} but its image is {ori[0]}x{ori[1]}',
                             image_of(results), 'seg_map_path', kind='size mismatch')
