"""Panoptic-quality statistics by hotcoco, in panopticapi's ``PQStat``: from
ground truth and predictions as RLEs, or with the ground truth read by
hotcoco from the COCO panoptic JSON and its PNGs (in Rust, in parallel)."""
from typing import Dict, List


def _categories(categories: Dict[int, dict]) -> List[dict]:
    return [dict(id=int(k), name=str(v['name']), isthing=int(v['isthing']))
            for k, v in categories.items()]


def _predictions(images: List[dict], imgs: List[dict], cats: List[dict]):
    """The predicted segments of ``images`` as a hotcoco ``COCO``; image i
    is numbered ``i + 1`` (hotcoco takes integer ids only, and
    cityscapesscripts' are strings)."""
    from hotcoco import COCO
    preds = [dict(seg, image_id=number, score=1.0)
             for number, im in enumerate(images, 1) for seg in im['pred']]
    if not preds:
        return COCO(dict(images=imgs, annotations=[], categories=cats))
    gt_like = COCO(dict(images=imgs, annotations=[], categories=cats))
    return gt_like.load_res(preds)


def _pq_stat(evaluator):
    from panopticapi.evaluation import PQStat
    evaluator.evaluate()
    stat = PQStat()
    for cat_id, counts in evaluator.results()['per_class'].items():
        one = stat.pq_per_cat[int(cat_id)]
        one.tp, one.fp, one.fn = counts['tp'], counts['fp'], counts['fn']
        one.iou = counts['iou']
    return stat


def pq_stat_from_images(images: List[dict], categories: Dict[int, dict]):
    """Per-category PQ statistics of many images, matched by hotcoco.

    Args:
        images: per image, ``height``, ``width``, ``gt`` (segments with
            ``id``, ``category_id``, ``iscrowd``, ``area``, ``segmentation``)
            and ``pred`` (segments with ``category_id``, ``segmentation``):
            RLEs; pixels no GT segment covers are VOID.
        categories: category id → COCO category dict (with ``isthing``).

    Returns:
        panopticapi.evaluation.PQStat: TP / FP / FN and summed IoU per
        category, to average as panopticapi does.
    """
    from hotcoco import COCO
    from hotcoco.panoptic import PanopticEval
    imgs, gts = [], []
    for number, im in enumerate(images, 1):
        imgs.append(dict(id=number, height=im['height'], width=im['width']))
        for seg in im['gt']:
            # hotcoco numbers annotations itself only when none has an id
            gts.append(dict(seg, id=len(gts) + 1, image_id=number))
    cats = _categories(categories)
    gt = COCO(dict(images=imgs, annotations=gts, categories=cats))
    return _pq_stat(PanopticEval(gt, _predictions(images, imgs, cats)))


def pq_stat_from_files(images: List[dict], api, gt_folder: str,
                       categories: Dict[int, dict]):
    """As :func:`pq_stat_from_images`, the ground truth read by hotcoco
    from the PNGs in ``gt_folder`` and the segments of MMDetection's
    ``COCOPanoptic`` ``api`` (the annotation file), as panopticapi reads
    them.

    Args:
        images: per image, ``img_id`` (the file's), ``png`` (the GT PNG's
            name in ``gt_folder``) and ``pred`` (segments with
            ``category_id``, ``segmentation`` RLEs).
    """
    from hotcoco.panoptic import PanopticEval
    imgs, anns = [], []
    for number, im in enumerate(images, 1):
        info = api.imgs[im['img_id']]
        imgs.append(dict(id=number, height=info['height'], width=info['width'],
                         file_name=info['file_name']))
        segments = [dict(id=s['id'], category_id=s['category_id'], iscrowd=s['iscrowd'],
                         area=s['area'], bbox=s.get('bbox', [0, 0, 0, 0]))
                    for s in api.imgToAnns[im['img_id']]]
        anns.append(dict(image_id=number, file_name=im['png'], segments_info=segments))
    cats = _categories(categories)
    gt = dict(images=imgs, annotations=anns, categories=cats)
    return _pq_stat(PanopticEval(gt, _predictions(images, imgs, cats), gt_folder=gt_folder))
