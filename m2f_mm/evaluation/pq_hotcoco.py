"""Panoptic-quality statistics by hotcoco, in panopticapi's ``PQStat``: the
ground truth read by hotcoco from the COCO panoptic PNGs (in Rust, in
parallel) with segments as panopticapi reads them, the predictions as RLEs."""
import contextlib
import os
import os.path as osp
import tempfile
from typing import Dict, Iterator, List, Optional, Sequence

from mmengine.fileio import get


@contextlib.contextmanager
def local_folder(folder: str, names: Sequence[str],
                 backend_args: Optional[dict] = None) -> Iterator[str]:
    """``folder`` itself where it is a local directory read without
    ``backend_args``; else a temporary directory holding a copy of each of
    ``names`` fetched from it through mmengine's file backends (as MMDet
    reads the PNGs), removed afterwards."""
    if backend_args is None and osp.isdir(folder):
        yield folder
        return
    with tempfile.TemporaryDirectory() as tmp:
        for name in set(names):
            with open(osp.join(tmp, name), 'wb') as f:
                f.write(get(osp.join(folder, name), backend_args=backend_args))
        yield tmp


def _pq_stat(evaluator):
    from panopticapi.evaluation import PQStat
    evaluator.evaluate()
    stat = PQStat()
    for cat_id, counts in evaluator.results()['per_class'].items():
        one = stat.pq_per_cat[int(cat_id)]
        one.tp, one.fp, one.fn = counts['tp'], counts['fp'], counts['fn']
        one.iou = counts['iou']
    return stat


def pq_stat(images: List[dict], api, gt_folder: str, categories: Dict[int, dict]):
    """Per-category PQ statistics of many images, matched by hotcoco as
    panopticapi matches them (its PNG form: pixels of id 0 are VOID, a GT
    segment's area is the annotation's where it states one).

    Args:
        images: per image, ``img_id`` (the dataset's), ``height``, ``width``,
            ``png`` (the GT PNG's name in ``gt_folder``), ``pred`` (segments
            with ``category_id`` and an RLE ``segmentation``) and, without
            ``api``, ``gt`` (segments with ``id``, ``category_id``,
            ``iscrowd``; their areas are counted in the PNG).
        api: MMDetection's ``COCOPanoptic`` of the annotation file, whose
            segments are the GT of each ``img_id`` (none for an image it
            lacks, as in MMDet), or None.
        gt_folder: a local directory with the GT PNGs.
        categories: category id → COCO category dict (with ``isthing``).

    Returns:
        panopticapi.evaluation.PQStat: TP / FP / FN and summed IoU per
        category, to average as panopticapi does.
    """
    from hotcoco import COCO
    from hotcoco.panoptic import PanopticEval
    imgs, anns, preds = [], [], []
    # hotcoco takes integer image ids only (cityscapesscripts' are strings)
    for number, im in enumerate(images, 1):
        imgs.append(dict(id=number, height=im['height'], width=im['width'],
                         file_name=im['png']))
        if api is None:
            segments = im['gt']
        else:
            segments = [dict(id=s['id'], category_id=s['category_id'], iscrowd=s['iscrowd'],
                             area=s['area'], bbox=s.get('bbox', [0, 0, 0, 0]))
                        for s in api.imgToAnns.get(im['img_id'], [])]
        anns.append(dict(image_id=number, file_name=im['png'], segments_info=segments))
        preds += [dict(seg, image_id=number, score=1.0) for seg in im['pred']]
    cats = [dict(id=int(k), name=str(v['name']), isthing=int(v['isthing']))
            for k, v in categories.items()]
    gt = dict(images=imgs, annotations=anns, categories=cats)
    pred = COCO(dict(images=imgs, annotations=[], categories=cats))
    if preds:
        pred = pred.load_res(preds)
    return _pq_stat(PanopticEval(gt, pred, gt_folder=gt_folder))
