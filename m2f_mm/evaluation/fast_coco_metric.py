"""COCO box and mask AP from predictions in memory, evaluated by hotcoco
(pycocotools' numbers, in Rust): MMDetection's ``CocoMetric`` without its
JSON round trip and pycocotools' Python per-image loop."""
import os.path as osp
import tempfile
import warnings
from collections import OrderedDict
from typing import Dict, List, Sequence

import numpy as np
import torch
from mmengine.fileio import get_local_path, load
from mmengine.logging import MMLogger

from m2f_mm.registry import METRICS
from .coco_metric import CocoMetric
from .rle import Kept, encode_masks, paused_gc, unwrap

# MMDet's names for COCOeval.stats, in their order (the AR names are fixed
# whatever proposal_nums says, as in MMDet)
_STATS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l', 'AR@100', 'AR@300',
          'AR@1000', 'AR_s@1000', 'AR_m@1000', 'AR_l@1000')


def _detections(preds: List[dict], cat_ids: List[int], iou_type: str) -> List[dict]:
    """COCO result dicts of one type, as MMDet's ``results2json`` writes
    them; segm results carry no box, so their area is the mask's (as MMDet)."""
    dets = []
    for pred in preds:
        img_id = pred['img_id']
        cats = [cat_ids[label] for label in pred['labels'].tolist()]
        if iou_type == 'bbox':
            boxes = np.asarray(pred['bboxes'], np.float64)  # MMDet subtracts in float64
            xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
            dets += [dict(image_id=img_id, bbox=box, score=score, category_id=cat)
                     for box, score, cat in zip(xywh.tolist(), pred['scores'].tolist(), cats)]
            continue
        scores = pred.get('mask_scores', pred['scores']).tolist()
        dets += [dict(image_id=img_id, segmentation=_str_counts(rle), score=score,
                      category_id=cat) for rle, score, cat in zip(pred['masks'], scores, cats)]
    return dets


def _str_counts(rle: dict) -> dict:
    counts = rle['counts']
    return rle if isinstance(counts, str) else dict(size=rle['size'], counts=counts.decode())


def _encoded(sample: dict) -> dict:
    """``sample`` with its predicted masks encoded all at once (MMDet's
    ``process`` keeps encoded masks as they are)."""
    pred = sample['pred_instances']
    masks = pred.get('masks') if isinstance(pred, dict) else None
    if not isinstance(masks, torch.Tensor):
        return sample
    return dict(sample, pred_instances=dict(pred, masks=encode_masks(masks)))


def _hotcoco(data: dict):
    """A hotcoco ``COCO`` of ``data`` (a COCO dict), and the map it needs
    from the file's image ids to its own: ``None`` where the ids are
    integers, else string id -> 1, 2, ... (hotcoco takes integers only)."""
    from hotcoco import COCO
    if all(isinstance(im['id'], int) for im in data['images']):
        return COCO(data), None
    ids = {im['id']: n for n, im in enumerate(data['images'], 1)}
    data = dict(data, images=[dict(im, id=ids[im['id']]) for im in data['images']],
                annotations=[dict(a, image_id=ids[a['image_id']])
                             for a in data['annotations']])
    return COCO(data), ids


@METRICS.register_module()
class FastCocoMetric(CocoMetric):
    """:class:`CocoMetric` (MMDetection's, labels mapped through the
    metainfo's ``category_ids``) with the same arguments and results
    (``coco/segm_mAP``, ``coco/segm_mAP_50``, ..., ``coco/bbox_mAP``, the
    per-class ``<class>_precision`` and tables), evaluated by hotcoco's
    ``COCOeval`` from the predictions in memory.

    ``process`` is MMDet's (RLE-encoded masks, a few kB per image, here
    encoded in one call per image), so results gather across processes as
    before. ``format_only`` and the
    proposal metrics run MMDetection's code.

    Args:
        **kwargs: ``mmdet.CocoMetric``'s arguments.
    """

    def __init__(self, ann_file=None, **kwargs) -> None:
        super().__init__(ann_file=ann_file, **kwargs)
        self.ann_file = ann_file
        self._hot_gt = None
        self._hot_ids = None  # file image id -> hotcoco's, where they differ

    def _hotcoco_gt(self, gts):
        """The ground truth as a hotcoco ``COCO``: the annotation file, or
        MMDet's conversion of the dataset's instances."""
        from hotcoco import COCO
        if self._hot_gt is not None:
            return self._hot_gt
        if self.ann_file is not None:
            with get_local_path(self.ann_file, backend_args=self.backend_args) as path:
                try:
                    self._hot_gt = COCO(path)  # read in Rust: fast
                except ValueError:  # string image ids
                    self._hot_gt, self._hot_ids = _hotcoco(load(path))
            return self._hot_gt
        with tempfile.TemporaryDirectory() as tmp:
            path = self.gt_to_coco_json(gts, osp.join(tmp, 'results'))
            # MMDet's api for the category and image ids, as its metric
            from mmdet.datasets.api_wrappers import COCO as MMDetCOCO
            self._coco_api = MMDetCOCO(path)
            # MMDet writes "licenses": null, which hotcoco refuses
            data = {k: v for k, v in load(path).items() if v is not None}
            coco, self._hot_ids = _hotcoco(data)
            return coco  # the dataset's instances: not cached

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """MMDet's ``process``, each image's masks encoded in one call and
        its results kept in a :class:`~m2f_mm.evaluation.rle.Kept`."""
        start = len(self.results)
        super().process(data_batch, [_encoded(s) for s in data_samples])
        self.results[start:] = [Kept(r) for r in self.results[start:]]

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """AP per ``metric`` (``bbox``, ``segm``), rounded as MMDet does.

        Args:
            results: ``(gt, prediction)`` per image, from every process.

        Returns:
            dict: MMDet's keys and values.
        """
        results = unwrap(results)
        if self.format_only or not set(self.metrics) <= {'bbox', 'segm'}:
            return super().compute_metrics(results)
        with paused_gc():
            return self._hotcoco_metrics(results)

    def _hotcoco_metrics(self, results: list) -> Dict[str, float]:
        from hotcoco import COCOeval
        logger = MMLogger.get_current_instance()
        gts, preds = zip(*results)
        coco_gt = self._hotcoco_gt(gts)
        if self.cat_ids is None:
            self.cat_ids = self._coco_api.get_cat_ids(cat_names=self.dataset_meta['classes'])
        if self.img_ids is None:
            self.img_ids = self._coco_api.get_img_ids()
        out = OrderedDict()
        for metric in self.metrics:
            logger.info(f'Evaluating {metric}...')
            dets = _detections(preds, self.cat_ids, metric)
            img_ids = list(self.img_ids)
            if self._hot_ids is not None:
                img_ids = [self._hot_ids[i] for i in img_ids]
                for det in dets:
                    det['image_id'] = self._hot_ids[det['image_id']]
            if not dets:  # MMDet stops here as well (loadRes of nothing)
                logger.error('The testing results of the whole dataset is empty.')
                break
            coco_eval = COCOeval(coco_gt, coco_gt.load_res(dets), metric)
            coco_eval.params.catIds = list(self.cat_ids)
            coco_eval.params.imgIds = img_ids
            coco_eval.params.maxDets = list(self.proposal_nums)
            coco_eval.params.iouThrs = np.asarray(self.iou_thrs, np.float64)
            coco_eval.evaluate()
            coco_eval.accumulate()
            with warnings.catch_warnings():  # pycocotools prints these lines silently
                warnings.filterwarnings('ignore', r'hotcoco: (max_dets|iou_thrs) differ')
                coco_eval.summarize()
            if self.classwise:
                self._classwise(coco_eval.eval['precision'], out, logger)
            items = _STATS[:6] if self.metric_items is None else self.metric_items
            for item in items:
                if item not in _STATS:
                    raise KeyError(f'metric item "{item}" is not supported')
                out[f'{metric}_{item}'] = float(
                    f'{round(coco_eval.stats[_STATS.index(item)], 3)}')
            ap = coco_eval.stats[:6]
            logger.info(f'{metric}_mAP_copypaste: ' + ' '.join(f'{v:.3f}' for v in ap))
        return out

    def _classwise(self, precisions: np.ndarray, out: dict, logger) -> None:
        """Per-category AP (all / IoU .5 / .75 / small / medium / large) as
        MMDet computes it: ``<class>_precision`` in ``out``, a table in the log."""
        from terminaltables import AsciiTable

        def mean(p):
            p = p[p > -1]
            return round(float(np.mean(p)), 3) if p.size else float('nan')

        rows = [('category', 'mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')]
        for idx, cat_id in enumerate(self.cat_ids):
            name = self._coco_api.load_cats(cat_id)[0]['name']
            aps = [mean(precisions[:, :, idx, 0, -1]), mean(precisions[0, :, idx, 0, -1]),
                   mean(precisions[5, :, idx, 0, -1])]
            aps += [mean(precisions[:, :, idx, area, -1]) for area in (1, 2, 3)]
            out[f'{name}_precision'] = aps[0]
            rows.append((name, *[str(a) for a in aps]))
        logger.info('\n' + AsciiTable(rows).table)
