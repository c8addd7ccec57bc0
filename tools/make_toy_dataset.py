"""Generate the seeded "toy shapes" dataset used by the quickstart.

Every image (``size x size`` RGB) is tiled by 2-3 textured stuff regions
(sky / grass / water, split by wavy boundaries) with 1 to ``max_things``
thing objects
(circle / square / triangle) painted on top; later objects occlude earlier
ones, and a placement that would leave any object with fewer than
``MIN_AREA`` visible pixels, or with less than ``MIN_VISIBLE`` of its own
area, is rejected (so every thing shows enough of its outline to be named).
Class order and metainfo live in
``m2f_mm/datasets/toy.py``.

Layout written under ``out_dir`` (COCO-like)::

    train/NNNNNN.png, val/NNNNNN.png                  images (H, W, 3) uint8
    annotations/panoptic_{train,val}.json             COCO panoptic
    annotations/panoptic_{train,val}/NNNNNN.png       ids, R + 256 G + 256^2 B
    annotations/instances_{train,val}.json            COCO instances (RLE)
    semantic/{train,val}/NNNNNN.png                   (H, W) uint8, 0..5
    meta.json                                         stamp of the arguments

Usage::

    python tools/make_toy_dataset.py [--out data/toy] [--num-train 48]
        [--num-val 16] [--size 128] [--seed 0] [--interleaved] [--force]
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
import shutil
import sys
import tempfile
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

GENERATOR_VERSION = 2
# the quickstart's dataset (configs/quickstart/*.py read data/toy)
NUM_TRAIN, NUM_VAL, SIZE, MAX_THINGS = 600, 48, 128, 5
MIN_AREA = 20  # minimum visible pixels of a thing
MIN_VISIBLE = 0.75  # minimum visible fraction of a thing's own area
THING_SIZE = (20, 48)  # object extent in pixels (clipped to size / 2)


def _load_toy_meta():
    """Import ``m2f_mm/datasets/toy.py`` without importing all of m2f_mm.

    The package ``__init__`` pulls in torch/mmdet; the metainfo module is plain
    data, so load it straight from its file when this script sits in the repo.
    """
    path = osp.join(osp.dirname(osp.abspath(__file__)), '..', 'm2f_mm',
                    'datasets', 'toy.py')
    if osp.isfile(path):
        spec = importlib.util.spec_from_file_location('_m2f_mm_toy_meta', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    from m2f_mm.datasets import toy
    return toy


_TOY = _load_toy_meta()
CATEGORIES = _TOY.TOY_CATEGORIES
NUM_THINGS = len(_TOY.TOY_THING_CLASSES)
NUM_STUFF = len(_TOY.TOY_STUFF_CLASSES)


# --------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------
def _stuff_texture(k: int, yy: np.ndarray, xx: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """Texture of stuff class ``k`` (0 sky, 1 grass, 2 water) over the image.

    Args:
        yy, xx: (H, W) float pixel-centre coordinates.
    Returns:
        (H, W, 3) float32 colours (not clipped).
    """
    base = np.asarray(_TOY.TOY_PALETTE[NUM_THINGS + k], np.float32)
    base = base + rng.uniform(-15, 15, 3).astype(np.float32)
    h, w = yy.shape
    if k == 0:  # sky: soft horizontal stripes
        period, phase = rng.uniform(7, 12), rng.uniform(0, 2 * np.pi)
        delta = 18 * np.sin(2 * np.pi * yy / period + phase)[..., None]
    elif k == 1:  # grass: green-dominant pixel noise
        noise = rng.normal(0, 18, (h, w, 1)).astype(np.float32)
        delta = noise * np.asarray([0.6, 1.0, 0.4], np.float32)
    else:  # water: checker
        cell = int(rng.integers(5, 9))
        ox, oy = rng.integers(0, cell, 2)
        checker = (((xx + ox) // cell + (yy + oy) // cell) % 2) * 2 - 1
        delta = 20 * checker[..., None]
    return (base + delta).astype(np.float32)


def _stuff_layout(size: int, rng: np.random.Generator) -> np.ndarray:
    """Split the image into 2-3 stuff regions along wavy boundaries.

    Returns:
        (H, W) int64 stuff index (0..NUM_STUFF-1) per pixel.
    """
    n = int(rng.integers(2, 4))
    classes = rng.permutation(NUM_STUFF)[:n]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    u, t = (yy, xx) if rng.integers(2) == 0 else (xx, yy)
    region = np.zeros((size, size), np.int64)
    for j in range(1, n):
        pos = size * j / n + rng.uniform(-0.08, 0.08) * size
        amp = rng.uniform(1.5, size / 14)
        freq = rng.uniform(0.5, 2.5)
        phase = rng.uniform(0, 2 * np.pi)
        boundary = pos + amp * np.sin(2 * np.pi * freq * t / size + phase)
        region += (u > boundary)
    return classes[region]


def _shape_mask(cls: int, cx: float, cy: float, s: float, theta: float,
                yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Rasterise a circle (0), square (1) or triangle (2) of extent ``s``.

    Returns:
        (H, W) bool mask (pixel centres inside the shape).
    """
    dx, dy = xx - cx, yy - cy
    if cls == 0:
        return dx * dx + dy * dy <= (s / 2) ** 2
    c, sn = np.cos(theta), np.sin(theta)
    if cls == 1:
        u, v = c * dx + sn * dy, -sn * dx + c * dy
        return (np.abs(u) <= s / 2) & (np.abs(v) <= s / 2)
    radius = s / np.sqrt(3)  # equilateral triangle with side s
    ang = theta + 2 * np.pi * np.arange(3) / 3
    vx, vy = radius * np.cos(ang), radius * np.sin(ang)
    inside = np.ones(dx.shape, bool)
    for i in range(3):  # vertices are counter-clockwise in (x, y)
        j = (i + 1) % 3
        cross = (vx[j] - vx[i]) * (dy - vy[i]) - (vy[j] - vy[i]) * (dx - vx[i])
        inside &= cross >= 0
    return inside


def _place_things(size: int, max_things: int, rng: np.random.Generator
                  ) -> Tuple[np.ndarray, List[int]]:
    """Place 1 to ``max_things`` things; reject placements that hide any
    thing too much (below ``MIN_AREA`` pixels or ``MIN_VISIBLE`` of it).

    Returns:
        inst: (H, W) int64 map, index into ``classes`` or -1 for background.
        classes: thing class (0..NUM_THINGS-1) of each placed object.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    target = int(rng.integers(1, max_things + 1))
    inst = np.full((size, size), -1, np.int64)
    classes: List[int] = []
    full_areas: List[int] = []  # unoccluded area of each placed thing
    lo, hi = THING_SIZE[0], max(THING_SIZE[0], min(THING_SIZE[1], size / 2))
    for _ in range(10 * target):
        if len(classes) == target:
            break
        cls = int(rng.integers(NUM_THINGS))
        s = rng.uniform(lo, hi)
        margin = min(0.6 * s, size / 2)
        cx, cy = rng.uniform(margin, size - margin, 2)
        mask = _shape_mask(cls, cx, cy, s, rng.uniform(0, 2 * np.pi), yy, xx)
        new = np.where(mask, len(classes), inst)
        areas = np.bincount(new[new >= 0], minlength=len(classes) + 1)
        full = full_areas + [int(mask.sum())]
        if areas.min() >= MIN_AREA and (areas >= MIN_VISIBLE * np.asarray(full)).all():
            inst = new
            classes.append(cls)
            full_areas = full
    return inst, classes


def _render(size: int, max_things: int, rng: np.random.Generator):
    """Render one image with its annotations.

    Returns:
        img: (H, W, 3) uint8 RGB.
        stuff: (H, W) int64 stuff index per pixel (under the things).
        inst: (H, W) int64 thing index or -1.
        classes: thing class per thing index.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    stuff = _stuff_layout(size, rng)
    img = np.zeros((size, size, 3), np.float32)
    for k in range(NUM_STUFF):
        tex = _stuff_texture(k, yy, xx, rng)
        img = np.where((stuff == k)[..., None], tex, img)
    inst, classes = _place_things(size, max_things, rng)
    for i in range(len(classes)):
        m = inst == i
        under = img[m].mean(0)
        for _ in range(10):  # keep the object visibly different from ground
            color = rng.uniform(0, 255, 3)
            if np.abs(color - under).sum() > 150:
                break
        shade = rng.normal(0, 6, (int(m.sum()), 1))
        img[m] = color + shade
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), stuff, inst, classes


# --------------------------------------------------------------------------
# annotations
# --------------------------------------------------------------------------
def _bbox(mask: np.ndarray) -> List[int]:
    """COCO ``[x, y, w, h]`` of a non-empty (H, W) bool mask."""
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]


def _id2rgb(ids: np.ndarray) -> np.ndarray:
    """(H, W) int segment ids -> (H, W, 3) uint8, id = R + 256 G + 256^2 B."""
    return np.stack([(ids >> (8 * c)) & 255 for c in range(3)],
                    -1).astype(np.uint8)


def _save_png(arr: np.ndarray, path: str) -> None:
    Image.fromarray(arr).save(path, format='PNG', optimize=False)


def _write_split(root: str, split: int, name: str, num: int, size: int,
                 seed: int, max_things: int, interleaved: bool = False) -> None:
    """Render ``num`` images of one split and write all of their files;
    ``interleaved``: category ids of ``TOY_INTERLEAVED_IDS`` (the images and
    the semantic maps are the same)."""
    ids = _TOY.TOY_INTERLEAVED_IDS if interleaved else tuple(
        range(1, NUM_THINGS + NUM_STUFF + 1))
    categories = _TOY.TOY_INTERLEAVED_CATEGORIES if interleaved else CATEGORIES
    thing_ids = set(ids[:NUM_THINGS])
    for sub in (name, f'semantic/{name}', f'annotations/panoptic_{name}'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    images, pan_anns, inst_anns = [], [], []
    for idx in range(num):
        # per-image stream: an image does not depend on the split sizes
        rng = np.random.default_rng([seed, split, idx])
        img, stuff, inst, classes = _render(size, max_things, rng)
        img_id, file_name = idx + 1, f'{idx + 1:06d}.png'
        images.append(dict(id=img_id, file_name=file_name, height=size,
                           width=size))
        # contiguous labels: things 0..2, stuff 3..5
        thing_cls = np.asarray(classes + [0], np.int64)[inst]
        semantic = np.where(inst >= 0, thing_cls, stuff + NUM_THINGS)
        pan = np.zeros((size, size), np.int64)
        segments = []
        for k in range(NUM_STUFF):
            m = (stuff == k) & (inst < 0)
            if m.any():
                cat_id = ids[NUM_THINGS + k]
                segments.append((cat_id * 1000, cat_id, m))
        counts = [0] * NUM_THINGS
        for i, cls in enumerate(classes):
            counts[cls] += 1
            segments.append((ids[cls] * 1000 + counts[cls], ids[cls],
                             inst == i))
        seg_infos = []
        for seg_id, cat_id, m in segments:
            pan[m] = seg_id
            area, bbox = int(m.sum()), _bbox(m)
            seg_infos.append(dict(id=seg_id, category_id=cat_id, iscrowd=0,
                                  bbox=bbox, area=area))
            if cat_id in thing_ids:
                rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
                rle['counts'] = rle['counts'].decode('ascii')
                inst_anns.append(dict(id=len(inst_anns) + 1, image_id=img_id,
                                      category_id=cat_id, segmentation=rle,
                                      area=area, bbox=bbox, iscrowd=0))
        pan_anns.append(dict(image_id=img_id, file_name=file_name,
                             segments_info=seg_infos))
        _save_png(img, osp.join(root, name, file_name))
        _save_png(semantic.astype(np.uint8),
                  osp.join(root, 'semantic', name, file_name))
        _save_png(_id2rgb(pan),
                  osp.join(root, 'annotations', f'panoptic_{name}', file_name))
    info = dict(description=f'm2f_mm toy shapes ({name})',
                version=str(GENERATOR_VERSION))
    panoptic = dict(info=info, licenses=[], images=images,
                    annotations=pan_anns, categories=categories)
    instances = dict(info=info, licenses=[], images=images,
                     annotations=inst_anns,
                     categories=[c for c in categories if c['isthing']])
    for fname, data in ((f'panoptic_{name}.json', panoptic),
                        (f'instances_{name}.json', instances)):
        with open(osp.join(root, 'annotations', fname), 'w') as f:
            json.dump(data, f)


# --------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------
def _stamp(num_train: int, num_val: int, size: int, seed: int,
           max_things: int, interleaved: bool = False) -> Dict:
    args = dict(num_train=num_train, num_val=num_val, size=size, seed=seed,
                max_things=max_things)
    if interleaved:  # absent otherwise: stamps of earlier datasets still match
        args['interleaved'] = True
    return dict(generator='m2f_mm toy shapes', version=GENERATOR_VERSION,
                args=args, classes=list(_TOY.TOY_CLASSES))


def toy_dataset_is_current(out_dir: str = 'data/toy',
                           num_train: int = NUM_TRAIN, num_val: int = NUM_VAL,
                           size: int = SIZE, seed: int = 0,
                           max_things: int = MAX_THINGS,
                           interleaved: bool = False) -> bool:
    """Whether ``out_dir`` holds a complete dataset made with these args."""
    try:
        with open(osp.join(out_dir, 'meta.json')) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return False
    if meta != _stamp(num_train, num_val, size, seed, max_things, interleaved):
        return False
    return all(
        len(os.listdir(osp.join(out_dir, name))) == num
        for name, num in (('train', num_train), ('val', num_val)))


def make_toy_dataset(out_dir: str = 'data/toy', num_train: int = NUM_TRAIN,
                     num_val: int = NUM_VAL, size: int = SIZE, seed: int = 0,
                     max_things: int = MAX_THINGS, force: bool = False,
                     interleaved: bool = False) -> str:
    """Generate the toy dataset under ``out_dir`` (atomically) and return it.

    A no-op when ``out_dir`` already holds a dataset made with the same
    arguments (see ``meta.json``), unless ``force``. An existing directory
    that is not one of ours is never replaced without ``force``.

    Args:
        out_dir: destination directory.
        num_train, num_val: number of images per split.
        size: image height = width in pixels.
        seed: seed; equal arguments give byte-identical files.
        max_things: most things per image (each image draws 1 to this).
        force: regenerate even if up to date.
        interleaved: category ids with stuff between things
            (``TOY_INTERLEAVED_IDS``), labels still things first.
    Returns:
        ``out_dir``.
    """
    if size < 32:
        raise ValueError(f'size must be >= 32, got {size}')
    if max_things < 1:
        raise ValueError(f'max_things must be >= 1, got {max_things}')
    if not force and toy_dataset_is_current(out_dir, num_train, num_val,
                                            size, seed, max_things, interleaved):
        return out_dir
    if (osp.exists(out_dir) and os.listdir(out_dir) and not force
            and not osp.isfile(osp.join(out_dir, 'meta.json'))):
        raise FileExistsError(f'{out_dir} exists and is not a toy dataset; '
                              'pass force=True (--force) to replace it')
    parent = osp.dirname(osp.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    base = osp.basename(osp.abspath(out_dir))
    tmp = tempfile.mkdtemp(prefix=f'.{base}.tmp-', dir=parent)
    old = None
    try:
        _write_split(tmp, 0, 'train', num_train, size, seed, max_things, interleaved)
        _write_split(tmp, 1, 'val', num_val, size, seed, max_things, interleaved)
        with open(osp.join(tmp, 'meta.json'), 'w') as f:
            json.dump(_stamp(num_train, num_val, size, seed, max_things, interleaved),
                      f, indent=1)
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
        if osp.exists(out_dir):  # move the old one aside, then swap in
            old = tempfile.mkdtemp(prefix=f'.{base}.old-', dir=parent)
            os.rename(out_dir, osp.join(old, base))
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not osp.exists(out_dir):
            os.rename(osp.join(old, base), out_dir)  # put the old one back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out_dir


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/toy')
    parser.add_argument('--num-train', type=int, default=NUM_TRAIN)
    parser.add_argument('--num-val', type=int, default=NUM_VAL)
    parser.add_argument('--size', type=int, default=SIZE)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--max-things', type=int, default=MAX_THINGS,
                        help='most things per image')
    parser.add_argument('--interleaved', action='store_true',
                        help='category ids with stuff between things (sky 1, '
                        'circle 2, ...), as Cityscapes/ADE20K/Mapillary number them')
    parser.add_argument('--force', action='store_true',
                        help='regenerate even if the dataset is up to date')
    a = parser.parse_args(argv)
    args = dict(num_train=a.num_train, num_val=a.num_val, size=a.size,
                seed=a.seed, max_things=a.max_things, interleaved=a.interleaved)
    current = not a.force and toy_dataset_is_current(a.out, **args)
    make_toy_dataset(a.out, force=a.force, **args)
    what = f'{a.num_train} train + {a.num_val} val {a.size}x{a.size} ' \
           f'images (seed {a.seed})'
    print(f'toy shapes: {a.out} already holds {what}' if current else
          f'toy shapes: wrote {what} to {a.out}')


if __name__ == '__main__':
    sys.exit(main())
