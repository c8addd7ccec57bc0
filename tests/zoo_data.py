"""Tiny datasets in the layouts the zoo configs read (README, 'Datasets'):
Cityscapes panoptic as cityscapesscripts writes it, ADE20K panoptic and
instance as the original's preparation scripts write them, Mapillary Vistas
panoptic and semantic as released, Cityscapes instance as MMDetection's
converter writes it. Two 64x96 images per split, each with two stuff
regions and one thing of the dataset's own category ids."""
import json
import os

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from m2f_mm.datasets.categories import (ADE20K_PANOPTIC_CATEGORIES, CITYSCAPES_CATEGORIES,
                                        MAPILLARY_VISTAS_CATEGORIES)

H, W = 64, 96


def _save(arr, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(arr).save(path)


def _scene(seed, cats):
    """Image, segment-id map and segments (id, category id, isthing, mask)."""
    rng = np.random.default_rng(seed)
    stuff = [c for c in cats if not c[2]][:2]
    thing = [c for c in cats if c[2]][seed % 2]
    top = np.zeros((H, W), bool)
    top[:H // 2] = True
    box = np.zeros((H, W), bool)
    box[20:44, 30:66] = True
    # segment id 0 is VOID in the PNGs (ADE20K's category ids start at 0)
    segs = [((stuff[0][0] + 1) * 1000, stuff[0][0], 0, top & ~box),
            ((stuff[1][0] + 1) * 1000, stuff[1][0], 0, ~top & ~box),
            ((thing[0] + 1) * 1000 + 1, thing[0], 1, box)]
    ids = np.zeros((H, W), np.int64)
    for seg_id, _, _, m in segs:
        ids[m] = seg_id
    img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    return img, ids, segs


def _bbox(m):
    ys, xs = np.nonzero(m)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
            int(ys.max() - ys.min() + 1)]


def _rgb(ids):
    return np.stack([(ids >> (8 * c)) & 255 for c in range(3)], -1).astype(np.uint8)


def write_panoptic(root, layout, split, n=2):
    """``layout``: 'cityscapes', 'ade20k' or 'mapillary'."""
    cats = dict(cityscapes=CITYSCAPES_CATEGORIES, ade20k=ADE20K_PANOPTIC_CATEGORIES,
                mapillary=MAPILLARY_VISTAS_CATEGORIES)[layout]
    images, anns = [], []
    for i in range(n):
        img, ids, segs = _scene(i, cats)
        if layout == 'cityscapes':
            stem = f'aachen_000000_00000{i}'
            img_name, png_name = stem + '_leftImg8bit.png', stem + '_gtFine_panoptic.png'
            img_path = f'leftImg8bit/{split}/aachen/{img_name}'
            png_dir, json_path = (f'gtFine/cityscapes_panoptic_{split}',
                                  f'gtFine/cityscapes_panoptic_{split}.json')
            img_id = stem  # cityscapesscripts' ids are strings
        elif layout == 'ade20k':
            folder = 'training' if split == 'train' else 'validation'
            img_name = f'ADE_{split}_0000000{i + 1}.jpg'
            png_name = img_name.replace('.jpg', '.png')
            img_path = f'images/{folder}/{img_name}'
            png_dir, json_path = f'ade20k_panoptic_{split}', f'ade20k_panoptic_{split}.json'
            img_id = img_name[:-4]
        else:
            folder = 'training' if split == 'train' else 'validation'
            img_name = f'img{i}.jpg'
            png_name = f'img{i}.png'
            img_path = f'{folder}/images/{img_name}'
            png_dir, json_path = f'{folder}/panoptic', f'{folder}/panoptic/panoptic_2018.json'
            img_id = f'img{i}'
        _save(img, os.path.join(root, img_path))
        _save(_rgb(ids), os.path.join(root, png_dir, png_name))
        images.append(dict(id=img_id, file_name=img_name, height=H, width=W))
        anns.append(dict(image_id=img_id, file_name=png_name, segments_info=[
            dict(id=s, category_id=c, iscrowd=0, area=int(m.sum()), bbox=_bbox(m))
            for s, c, _, m in segs]))
    categories = [dict(id=c[0], name=c[1], isthing=c[2]) for c in cats]
    with open(os.path.join(root, json_path), 'w') as f:
        json.dump(dict(images=images, annotations=anns, categories=categories), f)


def write_instance(root, layout, split, n=2):
    """``layout``: 'cityscapes' (MMDetection's converter) or 'ade20k'."""
    cats = CITYSCAPES_CATEGORIES if layout == 'cityscapes' else ADE20K_PANOPTIC_CATEGORIES
    things = [c for c in cats if c[2]]
    images, anns = [], []
    for i in range(n):
        img, _, segs = _scene(i, cats)
        if layout == 'cityscapes':
            name = f'aachen/aachen_000000_00000{i}_leftImg8bit.png'
            img_path = f'leftImg8bit/{split}/{name}'
            json_path = f'annotations/instancesonly_filtered_gtFine_{split}.json'
        else:
            folder = 'training' if split == 'train' else 'validation'
            name = f'ADE_{split}_0000000{i + 1}.jpg'
            img_path = f'images/{folder}/{name}'
            json_path = f'ade20k_instance_{split}.json'
        _save(img, os.path.join(root, img_path))
        images.append(dict(id=i + 1, file_name=name, height=H, width=W))
        for _, cat, isthing, m in segs:
            if isthing:
                rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
                rle['counts'] = rle['counts'].decode('ascii')
                anns.append(dict(id=len(anns) + 1, image_id=i + 1, category_id=cat,
                                 segmentation=rle, area=int(m.sum()), bbox=_bbox(m),
                                 iscrowd=0))
    categories = [dict(id=c[0], name=f'file name {c[0]}') for c in things]
    if layout == 'cityscapes':  # MMDetection's converter names them as Cityscapes
        categories = [dict(id=c[0], name=c[1]) for c in things]
    os.makedirs(os.path.dirname(os.path.join(root, json_path)), exist_ok=True)
    with open(os.path.join(root, json_path), 'w') as f:
        json.dump(dict(images=images, annotations=anns, categories=categories), f)


def write_mapillary_semantic(root, split, n=2):
    folder = 'training' if split == 'train' else 'validation'
    for i in range(n):
        img, ids, segs = _scene(i, MAPILLARY_VISTAS_CATEGORIES)
        label = np.full((H, W), 65, np.uint8)  # 65: 'Unlabeled'
        for _, cat, _, m in segs:
            label[m] = cat - 1  # label values 0..64 are ids 1..65
        label[:4] = 65
        _save(img, os.path.join(root, folder, 'images', f'img{i}.jpg'))
        _save(label, os.path.join(root, folder, 'labels', f'img{i}.png'))
