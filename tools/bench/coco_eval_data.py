"""A seeded COCO-val-shaped evaluation set, generated: ground truth on disk
(panoptic PNGs and JSON, instance JSON) and MMDetection-style predictions in
memory, for ``tools/benchmark_eval.py`` and the metric tests.

It holds the cases an evaluator must get right: crowd regions, VOID pixels,
images without ground truth, empty predictions, a class never predicted,
wrong classes, missed and spurious segments.
"""
import json
import os
import os.path as osp
from typing import Dict, Iterator, List

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_util

INSTANCE_OFFSET = 1000  # MMDetection's: pan = label + id * INSTANCE_OFFSET


def coco_like_meta(num_things: int = 80, num_stuff: int = 53, seed: int = 0) -> dict:
    """Categories with COCO-like, non-contiguous ids, things first.

    Returns:
        dict: ``categories`` (COCO dicts) and ``dataset_meta`` (MMDet's).
    """
    rng = np.random.RandomState(seed)
    total = num_things + num_stuff
    ids = np.sort(rng.choice(np.arange(1, 2 * total + 1), total, replace=False))
    cats = [dict(id=int(i), name=f'c{int(i)}', isthing=int(k < num_things),
                 supercategory='x') for k, i in enumerate(ids)]
    names = tuple(c['name'] for c in cats)
    meta = dict(classes=names, thing_classes=names[:num_things],
                stuff_classes=names[num_things:])
    return dict(categories=cats, dataset_meta=meta)


def _ellipse(h, w, rng):
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ry, rx = rng.uniform(4, h / 4), rng.uniform(4, w / 4)
    yy, xx = np.ogrid[:h, :w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def _ground_truth(idx, h, w, rng, meta, num_segments):
    """One image's GT id map (0 = VOID) and its segments (category as a
    class index)."""
    classes = meta['classes']
    nthing, ncls = len(meta['thing_classes']), len(classes)
    gt = np.zeros((h, w), np.int32)
    segs = []
    if idx % 25 != 3:  # every 25th image has no ground truth at all
        n_stuff = rng.randint(1, 4)
        cuts = np.sort(rng.randint(0, h, n_stuff - 1))
        bands = np.split(np.arange(h), cuts)
        for band in bands:
            if len(band):
                segs.append((nthing + rng.randint(ncls - nthing), 0, band, None))
        for _ in range(max(1, num_segments - n_stuff)):
            segs.append((rng.randint(nthing), int(rng.rand() < 0.08), None,
                         _ellipse(h, w, rng)))
    seg_info = []
    for sid, (cls, crowd, band, mask) in enumerate(segs, start=1):
        if mask is None:
            mask = np.zeros((h, w), bool)
            mask[band] = True
        gt[mask] = sid
    if idx % 5 == 1:  # a VOID blob
        void = _ellipse(h, w, rng)
        gt[void] = 0
    for sid, (cls, crowd, _, _) in enumerate(segs, start=1):
        area = int((gt == sid).sum())
        if area:
            seg_info.append(dict(id=sid, category_id=cls, iscrowd=crowd, area=area))
    return gt, seg_info


def _prediction(idx, gt, seg_info, rng, meta, never):
    """The predicted label map, in MMDet's ``label + id * INSTANCE_OFFSET``
    form."""
    h, w = gt.shape
    nthing, ncls = len(meta['thing_classes']), len(meta['classes'])
    # prediction: GT shifted a little, some classes swapped, some segments
    # dropped, spurious blobs added; a class never predicted
    pred = np.full((h, w), ncls, np.int64)  # VOID label
    if idx % 17 != 5:  # every 17th prediction is empty
        dy, dx = rng.randint(-3, 4, 2)
        shifted = np.roll(np.roll(gt, dy, 0), dx, 1)
        for s in seg_info:
            cls = s['category_id']
            if rng.rand() < 0.1:
                continue
            if rng.rand() < 0.1:
                cls = rng.randint(nthing) if cls < nthing else \
                    nthing + rng.randint(ncls - nthing)
            if cls == never:
                continue
            pred[shifted == s['id']] = cls + s['id'] * INSTANCE_OFFSET
        for extra in range(rng.randint(0, 3)):
            cls = rng.randint(nthing)
            if cls != never:
                pred[_ellipse(h, w, rng)] = cls + (50 + extra) * INSTANCE_OFFSET
    return pred


def _rle(mask):
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode()
    return rle


def _instances(pred, ncls, nthing, dets, rng):
    """Instance predictions from the panoptic one: its things, then random
    blobs up to ``dets`` masks, with random scores (MMDet's ``pred_instances``)."""
    h, w = pred.shape
    masks, labels = [], []
    for pan in np.unique(pred):
        if pan % INSTANCE_OFFSET < nthing:
            masks.append(pred == pan)
            labels.append(pan % INSTANCE_OFFSET)
    while len(masks) < dets:
        masks.append(_ellipse(h, w, rng))
        labels.append(rng.randint(nthing))
    masks = np.stack(masks) if masks else np.zeros((0, h, w), bool)
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        cols, rows = np.flatnonzero(m.any(0)), np.flatnonzero(m.any(1))
        if len(cols):
            boxes[i] = cols[0], rows[0], cols[-1] + 1, rows[-1] + 1
    masks, boxes = torch.from_numpy(masks), torch.from_numpy(boxes)
    return dict(masks=masks, labels=torch.tensor(labels, dtype=torch.long),
                scores=torch.from_numpy(rng.rand(len(masks)).astype(np.float32)),
                bboxes=boxes)


def write_coco_like_set(root: str, num_images: int, height: int = 160,
                        width: int = 213, num_segments: int = 7,
                        dets: int = 20, seed: int = 0) -> dict:
    """Write the ground truth under ``root`` and return the predictions.

    Args:
        root: output folder (``panoptic/`` PNGs, ``panoptic.json``,
            ``instances.json``).
        num_images: how many images.
        height, width: image size.
        num_segments: GT segments per image (stuff bands + things), about.
        dets: instance predictions per image, at least.
        seed: the random seed.

    Returns:
        dict: ``dataset_meta``, ``panoptic_json``, ``instances_json``,
        ``seg_prefix``, ``never`` (the class index never predicted) and
        ``samples``: per image, what MMDet's metrics take apart from the
        predictions (``img_id``, ``img_path``, ``ori_shape``, ``segments_info``).
        Predictions come from :func:`predictions`.
    """
    info = coco_like_meta(seed=seed)
    meta, cats = info['dataset_meta'], info['categories']
    nthing = len(meta['thing_classes'])
    never = nthing - 1  # the last thing class is never predicted
    seg_prefix = osp.join(root, 'panoptic')
    os.makedirs(seg_prefix, exist_ok=True)
    rng = np.random.RandomState(seed)
    images, pan_anns, inst_anns, samples = [], [], [], []
    for idx in range(num_images):
        img_id = 1000 + 3 * idx
        gt, seg_info = _ground_truth(idx, height, width, rng, meta, num_segments)
        name = f'{img_id:012d}'
        rgb = np.stack([gt % 256, gt // 256 % 256, gt // 65536], -1).astype(np.uint8)
        Image.fromarray(rgb).save(osp.join(seg_prefix, name + '.png'))
        images.append(dict(id=img_id, file_name=name + '.jpg', height=height, width=width))
        for s in seg_info:
            cat = cats[s['category_id']]
            pan_anns.append((img_id, dict(s, category_id=cat['id'])))
            if cat['isthing']:
                mask = gt == s['id']
                box = mask_util.toBbox(mask_util.encode(np.asfortranarray(
                    mask.astype(np.uint8)))).tolist()
                inst_anns.append(dict(id=len(inst_anns) + 1, image_id=img_id,
                                      category_id=cat['id'], iscrowd=s['iscrowd'],
                                      area=s['area'], bbox=box, segmentation=_rle(mask)))
        samples.append(dict(
            img_id=img_id, img_path=osp.join(root, 'val', name + '.jpg'),
            ori_shape=(height, width),
            seg_map_path=osp.join(seg_prefix, name + '.png'),
            segments_info=[dict(id=s['id'], category=s['category_id'],
                                is_thing=s['category_id'] < nthing and not s['iscrowd'])
                           for s in seg_info]))
    by_image = {i['id']: [] for i in images}
    for img_id, s in pan_anns:
        by_image[img_id].append(s)
    panoptic = dict(images=images, categories=cats, annotations=[
        dict(image_id=i['id'], file_name=i['file_name'].replace('.jpg', '.png'),
             segments_info=by_image[i['id']]) for i in images])
    instances = dict(images=images, annotations=inst_anns,
                     categories=[c for c in cats if c['isthing']])
    paths = {}
    for key, data in (('panoptic_json', panoptic), ('instances_json', instances)):
        paths[key] = osp.join(root, key.replace('_json', '.json'))
        with open(paths[key], 'w') as f:
            json.dump(data, f)
    return dict(paths, dataset_meta=meta, seg_prefix=seg_prefix, never=never,
                samples=samples, dets=dets, seed=seed)


def predictions(data: dict, batch_size: int = 8) -> Iterator[List[Dict]]:
    """MMDetection's test outputs (as ``BaseMetric.process`` receives them),
    batch by batch, made on the fly so that no more than a batch is held.

    Args:
        data: what :func:`write_coco_like_set` returned.
        batch_size: images per batch.

    Yields:
        list of dict: data samples with ``pred_panoptic_seg`` and
        ``pred_instances``.
    """
    meta = data['dataset_meta']
    ncls, nthing = len(meta['classes']), len(meta['thing_classes'])
    batch = []
    for idx, sample in enumerate(data['samples']):
        # made again from the GT PNG, so that 5,000 maps are never all held
        rgb = np.asarray(Image.open(sample['seg_map_path']), np.int32)
        gt = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        seg_info = [dict(id=s['id'], category_id=s['category'])
                    for s in sample['segments_info']]
        rng = np.random.RandomState([data['seed'], idx])
        pred = _prediction(idx, gt, seg_info, rng, meta, data['never'])
        batch.append(dict(
            sample,
            pred_panoptic_seg=dict(sem_seg=torch.from_numpy(pred[None])),
            pred_instances=_instances(pred, ncls, nthing, data['dets'], rng)))
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
