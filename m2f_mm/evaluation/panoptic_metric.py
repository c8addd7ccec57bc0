"""MMDetection's CocoPanopticMetric, with per-class PQ in its results and
labels mapped to category ids through the metainfo's ``category_ids``."""
from typing import Dict, List, Optional, Sequence

from mmdet.evaluation.metrics import CocoPanopticMetric as _MMDetCocoPanopticMetric
from mmdet.evaluation.metrics.coco_panoptic_metric import (parse_pq_results,
                                                           print_panoptic_table)
from mmengine.logging import MMLogger

from m2f_mm.registry import METRICS


def use_label_order(api, category_ids: Sequence[int], where: str) -> None:
    """Make ``api.get_cat_ids(cat_names=...)`` answer ``category_ids``
    (label i -> category ``category_ids[i]``). MMDet's metric asks it by the
    metainfo's names and gets the file's order; datasets whose files
    interleave things and stuff are labelled things first
    (:mod:`m2f_mm.datasets.categories`), so the order must come from the
    metainfo."""
    missing = [i for i in category_ids if i not in api.cats]
    if missing:
        raise ValueError(f'{where}: metainfo category_ids {missing} are not among '
                         'the annotation file\'s categories')
    by_names = api.get_cat_ids

    def get_cat_ids(cat_names=[], sup_names=[], cat_ids=[]):  # noqa: B006 (MMDet's signature)
        if cat_names:
            return list(category_ids)
        return by_names(cat_names=cat_names, sup_names=sup_names, cat_ids=cat_ids)
    api.get_cat_ids = get_cat_ids


def gt_png_samples(data_samples: Sequence[dict], copy_prediction: bool) -> List[dict]:
    """The samples with ``img_path`` naming their ground-truth PNG, as
    MMDetection's panoptic metric reads it (``basename(img_path)`` with
    .jpg -> .png): a sample that records its ``seg_map_path`` (Cityscapes
    names the PNG unlike its image) gets that name. ``copy_prediction``
    copies the panoptic map, for MMDet's metric, which writes VOID into it
    in place (a metric after it in the evaluator list would read that)."""
    out = []
    for sample in data_samples:
        sample = dict(sample)
        seg = sample.get('seg_map_path')
        if seg:
            sample['img_path'] = seg.rsplit('.', 1)[0] + '.png'
        pred = sample.get('pred_panoptic_seg')
        if copy_prediction and pred is not None:
            pred = pred.to_dict() if hasattr(pred, 'to_dict') else dict(pred)
            pred['sem_seg'] = pred['sem_seg'].clone()
            sample['pred_panoptic_seg'] = pred
        out.append(sample)
    return out


@METRICS.register_module()
class CocoPanopticMetric(_MMDetCocoPanopticMetric):
    """``mmdet.CocoPanopticMetric``; with ``classwise=True`` the results also
    hold ``PQ_<class>``, ``SQ_<class>``, ``RQ_<class>`` (percent) of every
    class, where MMDetection only prints them. Arguments as MMDetection's.

    When the dataset's metainfo has ``category_ids``, label i is category
    ``category_ids[i]`` (not the i-th of the file's categories). A sample
    that records its ``seg_map_path`` is matched to that ground-truth PNG
    (Cityscapes names it unlike its image).

    Per-class values come from the per-batch PQ statistics, so they need the
    default mode (no ``outfile_prefix``); with one, MMDet's code computes
    and prints everything (its per-class table pairs the metainfo's class
    order with the file's: wrong names where things and stuff interleave).
    """

    @property
    def dataset_meta(self) -> Optional[dict]:
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict) -> None:
        self._dataset_meta = dataset_meta
        ids = (dataset_meta or {}).get('category_ids')
        if ids is not None and getattr(self, '_coco_api', None) is not None:
            use_label_order(self._coco_api, ids, 'CocoPanopticMetric ann_file')

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        super().process(data_batch, gt_png_samples(data_samples, copy_prediction=True))

    def _categories(self) -> Dict[int, dict]:
        """Category id → dict, as MMDet evaluates them: the annotation
        file's, else the class indices with ``isthing`` from the metainfo."""
        if self._coco_api is not None:
            return self._coco_api.cats
        meta = self.dataset_meta
        return {i: dict(id=i, name=name, isthing=int(name in meta['thing_classes']))
                for i, name in enumerate(meta['classes'])}

    def _pq_report(self, stat, categories: Dict[int, dict]) -> Dict[str, float]:
        """MMDet's tables and keys from summed PQ statistics over
        ``categories`` (from :meth:`_categories`), the classwise ones named
        by category id (MMDet pairs the metainfo's class order with the
        file's, which differ where things and stuff interleave)."""
        self.categories = categories
        pq_results = {}
        for name, isthing in (('All', None), ('Things', True), ('Stuff', False)):
            pq_results[name], per_class = stat.pq_average(categories, isthing=isthing)
            if isthing is None:
                all_classes = per_class
        classwise = None
        if self.classwise:
            classwise = {categories[cat_id]['name']: values
                         for cat_id, values in all_classes.items()}
        print_panoptic_table(pq_results, classwise, logger=MMLogger.get_current_instance())
        metrics = parse_pq_results(pq_results)
        for name, values in (classwise or {}).items():
            for key in ('pq', 'sq', 'rq'):
                metrics[f'{key.upper()}_{name}'] = 100 * values[key]
        return metrics

    def compute_metrics(self, results: list) -> Dict[str, float]:
        if self.tmp_dir is None:  # outfile_prefix: MMDet's files and tables
            return super().compute_metrics(results)
        from panopticapi.evaluation import PQStat
        stat = PQStat()
        for one in results:  # each batch's statistics, as MMDet sums them
            stat += one
        return self._pq_report(stat, self._categories())
