"""COCO panoptic quality (PQ, SQ, RQ) from predictions in memory, matched
by hotcoco: the numbers of MMDetection's ``CocoPanopticMetric`` without its
PNG round trip and per-image Python loop."""
import os.path as osp
from typing import Dict, List, Optional, Sequence

import mmcv
import numpy as np
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmengine.fileio import get

from m2f_mm.registry import METRICS
from .panoptic_metric import CocoPanopticMetric, gt_png_samples
from .pq_hotcoco import pq_stat_from_files, pq_stat_from_images
from .rle import Kept, encode_segments, label_map_segments, paused_gc, unwrap


def _rgb_to_ids(rgb: np.ndarray) -> np.ndarray:
    """COCO panoptic PNG colours (RGB) to segment ids: R + 256 G + 256² B."""
    rgb = rgb.astype(np.int32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


@METRICS.register_module()
class FastCocoPanopticMetric(CocoPanopticMetric):
    """:class:`CocoPanopticMetric` (MMDetection's, labels mapped through the
    metainfo's ``category_ids``) with the same arguments and results
    (``coco_panoptic/PQ``, ``PQ_th``, ``PQ_st``, ... and the tables),
    computed from the predicted maps in memory.

    ``process`` keeps, per image, the run-length encoded predicted segments
    (a few kB), so results gather across processes as MMDet's do;
    ``compute_metrics`` matches all images in one hotcoco call and averages
    the per-category statistics with panopticapi's ``PQStat``. With an
    ``ann_file`` and a local ``seg_prefix`` hotcoco reads the ground-truth
    PNGs itself (in Rust, in parallel) at ``compute_metrics``; otherwise
    ``process`` reads and encodes them too. With ``classwise=True`` the
    results also hold ``PQ_<class>``, ``SQ_<class>``, ``RQ_<class>``
    (percent). With ``outfile_prefix`` (test-server files, ``format_only``)
    everything runs through MMDetection's code, which writes the PNGs and
    the JSON; there the results hold no per-class keys.

    Args:
        **kwargs: ``mmdet.CocoPanopticMetric``'s arguments.
    """

    def __init__(self, outfile_prefix: Optional[str] = None, **kwargs) -> None:
        super().__init__(outfile_prefix=outfile_prefix, **kwargs)
        self.in_memory = outfile_prefix is None

    def _gt_segments(self, sample: dict, ids: np.ndarray) -> List[dict]:
        """The GT segments of one image, as MMDet's metric reads them."""
        if self._coco_api is not None:
            return [dict(id=s['id'], category_id=s['category_id'],
                         iscrowd=s['iscrowd'], area=s['area'])
                    for s in self._coco_api.imgToAnns[sample['img_id']]]
        cats = self._categories()
        segs = []
        for s in sample['segments_info']:
            isthing = cats[s['category']]['isthing']
            segs.append(dict(id=s['id'], category_id=s['category'],
                             iscrowd=int(isthing and not s['is_thing']),
                             area=int((ids == s['id']).sum())))
        return segs

    def _gt_from_files(self) -> bool:
        """Whether hotcoco reads the GT PNGs: from the annotation file's
        segments, on a local disk."""
        return (self._coco_api is not None and self.backend_args is None
                and osp.isdir(self.seg_prefix))

    def _image_segments(self, sample: dict, label2cat) -> dict:
        """One image's predicted segments as RLEs, and the GT's name (or,
        where hotcoco does not read the PNGs, its segments as RLEs)."""
        num_classes = len(self.dataset_meta['classes'])
        pan = sample['pred_panoptic_seg']['sem_seg'].cpu().numpy()[0]
        ignore_index = sample['pred_panoptic_seg'].get('ignore_index', num_classes)
        pred_ids, rles = label_map_segments(pan, (num_classes, ignore_index),
                                            INSTANCE_OFFSET)
        pred = [dict(category_id=label2cat[i % INSTANCE_OFFSET]
                     if label2cat else i % INSTANCE_OFFSET, segmentation=rle)
                for i, rle in zip(pred_ids, rles)]
        segm_file = osp.basename(sample['img_path']).replace('.jpg', '.png')
        if self._gt_from_files():
            return dict(img_id=sample['img_id'], png=segm_file, pred=pred)

        path = osp.join(self.seg_prefix, segm_file)
        rgb = mmcv.imfrombytes(get(path, backend_args=self.backend_args),
                               flag='color', channel_order='rgb')
        if rgb is None:
            raise FileNotFoundError(f'panoptic GT PNG {path} could not be read '
                                    f'(image id {sample["img_id"]})')
        ids = _rgb_to_ids(rgb)
        gt = self._gt_segments(sample, ids)
        for seg, rle in zip(gt, encode_segments(ids, [s['id'] for s in gt])):
            seg['segmentation'] = rle
        height, width = ids.shape
        return dict(img_id=sample['img_id'], height=height, width=width,
                    gt=gt, pred=pred)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Keep each image's segments as RLEs (see the class docstring).

        Args:
            data_batch: unused, as in MMDet.
            data_samples: samples with ``pred_panoptic_seg``, ``img_id``,
                ``img_path`` (and ``segments_info`` without ``ann_file``).
        """
        if not self.in_memory:
            return super().process(data_batch, data_samples)
        data_samples = gt_png_samples(data_samples, copy_prediction=False)
        label2cat = None
        if self._coco_api is not None:
            cat_ids = self._coco_api.get_cat_ids(cat_names=self.dataset_meta['classes'])
            label2cat = dict(enumerate(cat_ids))
        for sample in data_samples:
            self.results.append(Kept(self._image_segments(sample, label2cat)))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """PQ, SQ, RQ overall, for things and for stuff (percent).

        Args:
            results: what ``process`` kept, from every process.

        Returns:
            dict: MMDet's keys, plus the per-class ones with ``classwise``.
        """
        if not self.in_memory:
            return super().compute_metrics(results)
        categories = self._categories()
        results = unwrap(results)
        with paused_gc():
            if results and 'gt' not in results[0]:
                stat = pq_stat_from_files(results, self._coco_api, self.seg_prefix,
                                          categories)
            else:
                stat = pq_stat_from_images(results, categories)
        return self._pq_report(stat)
