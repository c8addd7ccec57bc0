"""COCO panoptic quality (PQ, SQ, RQ) from predictions in memory, matched
by hotcoco: the numbers of MMDetection's ``CocoPanopticMetric`` without its
PNG round trip and per-image Python loop."""
import os.path as osp
from typing import Dict, Optional, Sequence

from mmdet.evaluation.functional import INSTANCE_OFFSET

from m2f_mm.registry import METRICS
from .panoptic_metric import CocoPanopticMetric, gt_png_samples
from .pq_hotcoco import local_folder, pq_stat
from .rle import Kept, label_map_segments, paused_gc, unwrap


@METRICS.register_module()
class FastCocoPanopticMetric(CocoPanopticMetric):
    """:class:`CocoPanopticMetric` (MMDetection's, labels mapped through the
    metainfo's ``category_ids``) with the same arguments and results
    (``coco_panoptic/PQ``, ``PQ_th``, ``PQ_st``, ... and the tables),
    computed from the predicted maps in memory.

    ``process`` keeps, per image, the run-length encoded predicted segments
    (a few kB) and which GT PNG to read, so results gather across processes
    as MMDet's do; ``compute_metrics`` has hotcoco read the GT PNGs (in
    Rust, in parallel; from ``seg_prefix``, or from a temporary copy where
    ``backend_args`` or a remote ``seg_prefix`` need mmengine's file
    backends) and match all images in one call, and averages the
    per-category statistics with panopticapi's ``PQStat``. With
    ``classwise=True`` the results also hold ``PQ_<class>``, ``SQ_<class>``,
    ``RQ_<class>`` (percent). With ``outfile_prefix`` (test-server files,
    ``format_only``) everything runs through MMDetection's code, which
    writes the PNGs and the JSON; there the results hold no per-class keys.

    Args:
        **kwargs: ``mmdet.CocoPanopticMetric``'s arguments.
    """

    def __init__(self, outfile_prefix: Optional[str] = None, **kwargs) -> None:
        super().__init__(outfile_prefix=outfile_prefix, **kwargs)
        self.in_memory = outfile_prefix is None

    def _image_segments(self, sample: dict, label2cat, categories) -> dict:
        """One image's predicted segments as RLEs, its GT PNG's name and
        size, and, without an annotation file, its GT segments as MMDet's
        metric takes them from the sample (``categories``: label → COCO
        category dict; ``label2cat``: label → category id, or None)."""
        num_classes = len(self.dataset_meta['classes'])
        pan = sample['pred_panoptic_seg']['sem_seg'].cpu().numpy()[0]
        ignore_index = sample['pred_panoptic_seg'].get('ignore_index', num_classes)
        pred_ids, rles = label_map_segments(pan, (num_classes, ignore_index),
                                            INSTANCE_OFFSET)
        pred = [dict(category_id=label2cat[i % INSTANCE_OFFSET]
                     if label2cat else i % INSTANCE_OFFSET, segmentation=rle)
                for i, rle in zip(pred_ids, rles)]
        height, width = sample['ori_shape'][:2]
        out = dict(img_id=sample['img_id'], height=int(height), width=int(width),
                   png=osp.basename(sample['img_path']).replace('.jpg', '.png'),
                   pred=pred)
        if self._coco_api is None:
            out['gt'] = [dict(id=s['id'], category_id=s['category'],
                              iscrowd=int(bool(categories[s['category']]['isthing'])
                                          and not s['is_thing']))
                         for s in sample['segments_info']]
        return out

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
        categories = self._categories()  # once a batch, not an image
        for sample in data_samples:
            self.results.append(Kept(self._image_segments(sample, label2cat, categories)))

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
        with paused_gc(), local_folder(self.seg_prefix, [r['png'] for r in results],
                                       self.backend_args) as gt_folder:
            stat = pq_stat(results, self._coco_api, gt_folder, categories)
        return self._pq_report(stat, categories)
