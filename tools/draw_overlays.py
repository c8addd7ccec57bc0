"""Draw panoptic predictions next to their ground truth, large enough to read.

For each image of a COCO panoptic split: the image with the ground-truth
segments (left) and with the predicted ones (right), each upscaled to
``--width`` pixels, segments filled with their class colour, outlined, and
labelled with the class name. Also a grid of the first ``--grid`` images.
Predictions are the ``.pkl`` that ``tools/test.py --out`` writes (a
panoptic model, MMDetection host)::

    python tools/test.py CONFIG CKPT --out preds.pkl
    python tools/draw_overlays.py preds.pkl data/toy/annotations/panoptic_val.json \\
        data/toy/annotations/panoptic_val --out-dir overlays
"""
import argparse
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

INSTANCE_OFFSET = 1000  # MMDetection's panoptic ids: label + instance * 1000
TITLE_H = 34  # pixels of the caption above each panel

Segments = List[Tuple[np.ndarray, int]]  # (H, W) bool mask, class index


def _font(size: int) -> ImageFont.ImageFont:
    """DejaVu Sans (shipped with matplotlib), else Pillow's own font."""
    try:
        import matplotlib
        path = osp.join(osp.dirname(matplotlib.__file__), 'mpl-data', 'fonts',
                        'ttf', 'DejaVuSans-Bold.ttf')
        return ImageFont.truetype(path, size)
    except (ImportError, OSError):
        return ImageFont.load_default(size)


def gt_segments(pan_json: dict, seg_dir: str, cat_to_label: Dict[int, int]
                ) -> Dict[int, Tuple[str, Segments]]:
    """Image id → (file name, segments) of a COCO panoptic annotation."""
    out = {}
    for ann in pan_json['annotations']:
        rgb = np.asarray(Image.open(osp.join(seg_dir, ann['file_name'])),
                         np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        out[ann['image_id']] = (ann['file_name'], [
            (ids == s['id'], cat_to_label[s['category_id']])
            for s in ann['segments_info']])
    return out


def pred_segments(pan: np.ndarray, num_classes: int) -> Segments:
    """Segments of an MMDetection panoptic map (void = ``num_classes``)."""
    return [(pan == v, int(v) % INSTANCE_OFFSET) for v in np.unique(pan)
            if int(v) % INSTANCE_OFFSET != num_classes]


def _label_point(mask: np.ndarray) -> Tuple[int, int]:
    """(y, x) deepest inside ``mask``: the label sits there."""
    from scipy.ndimage import distance_transform_edt
    depth = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(np.argmax(depth), depth.shape)
    return int(y), int(x)


def draw_panel(img: np.ndarray, segments: Segments, classes: Sequence[str],
               palette: Sequence[Sequence[int]], width: int, title: str,
               alpha: float = 0.5) -> Image.Image:
    """``img`` (H, W, 3) RGB upscaled to ``width``, with ``segments`` filled,
    outlined and named, under a ``title``."""
    h, w = img.shape[:2]
    scale = width / w
    size = (width, round(h * scale))
    label = np.full((h, w), -1, np.int64)
    seg_index = np.full((h, w), -1, np.int64)
    for i, (mask, cls) in enumerate(segments):
        label[mask], seg_index[mask] = cls, i
    # masks by nearest neighbour, the image smoothly
    up = lambda a: np.asarray(Image.fromarray(a.astype(np.int32)).resize(  # noqa: E731
        size, Image.NEAREST), np.int64)
    label_up, index_up = up(label), up(seg_index)
    base = np.asarray(Image.fromarray(img).resize(size, Image.BILINEAR), np.float32)
    colours = np.asarray(list(palette) + [(0, 0, 0)], np.float32)
    tint = colours[label_up]
    out = np.where((label_up >= 0)[..., None], (1 - alpha) * base + alpha * tint, base)
    edge = np.zeros(index_up.shape, bool)  # segment borders, 2 px wide
    edge[:-1] |= index_up[:-1] != index_up[1:]
    edge[:, :-1] |= index_up[:, :-1] != index_up[:, 1:]
    edge[1:] |= edge[:-1].copy()
    edge[:, 1:] |= edge[:, :-1].copy()
    out[edge] = 255
    panel = Image.new('RGB', (size[0], size[1] + TITLE_H), 'white')
    panel.paste(Image.fromarray(out.clip(0, 255).astype(np.uint8)), (0, TITLE_H))
    draw = ImageDraw.Draw(panel)
    draw.text((8, 5), title, fill='black', font=_font(22))
    font = _font(max(14, round(width / 30)))
    for mask, cls in segments:
        y, x = _label_point(mask)
        draw.text(((x + 0.5) * scale, (y + 0.5) * scale + TITLE_H), classes[cls],
                  fill='white', font=font, anchor='mm', stroke_width=3,
                  stroke_fill=tuple(int(c * 0.45) for c in colours[cls]))
    return panel


def side_by_side(panels: Sequence[Image.Image], gap: int = 8) -> Image.Image:
    w = sum(p.width for p in panels) + gap * (len(panels) - 1)
    out = Image.new('RGB', (w, max(p.height for p in panels)), 'white')
    x = 0
    for p in panels:
        out.paste(p, (x, 0))
        x += p.width + gap
    return out


def grid(images: Sequence[Image.Image], columns: int, gap: int = 16) -> Image.Image:
    rows = -(-len(images) // columns)
    w, h = images[0].size
    out = Image.new('RGB', (columns * w + (columns - 1) * gap,
                            rows * h + (rows - 1) * gap), 'white')
    for i, im in enumerate(images):
        out.paste(im, ((i % columns) * (w + gap), (i // columns) * (h + gap)))
    return out


def draw_overlays(preds: list, pan_json_path: str, seg_dir: str, out_dir: str,
                  classes: Optional[Sequence[str]] = None, palette=None,
                  width: int = 512, num_grid: int = 6, grid_columns: int = 2,
                  limit: Optional[int] = None) -> Tuple[List[str], Optional[str]]:
    """Write ``out_dir/<image>.png`` (ground truth | prediction) for each
    prediction (the first ``limit``) and ``out_dir/grid.png`` of the first
    ``num_grid``; returns their paths.

    Args:
        preds: per image, a dict with ``img_id``, ``img_path`` and
            ``pred_panoptic_seg.sem_seg`` (1, H, W), as ``tools/test.py --out``
            dumps them.
        pan_json_path, seg_dir: the ground truth (COCO panoptic json, PNGs).
        classes, palette: names and RGB colours by contiguous label
            (default: the json's categories, things first, in id order).
    """
    with open(pan_json_path) as f:
        pan_json = json.load(f)
    cats = sorted(pan_json['categories'], key=lambda c: (-c['isthing'], c['id']))
    cat_to_label = {c['id']: i for i, c in enumerate(cats)}
    classes = list(classes or [c['name'] for c in cats])
    palette = list(palette or [c.get('color', (128, 128, 128)) for c in cats])
    gts = gt_segments(pan_json, seg_dir, cat_to_label)
    os.makedirs(out_dir, exist_ok=True)
    paths, pairs = [], []
    for sample in preds[:limit]:
        file_name, gt = gts[sample['img_id']]
        img = np.asarray(Image.open(sample['img_path']).convert('RGB'))
        pan = np.asarray(sample['pred_panoptic_seg']['sem_seg'])[0]
        pair = side_by_side([
            draw_panel(img, gt, classes, palette, width, 'ground truth'),
            draw_panel(img, pred_segments(pan, len(classes)), classes, palette,
                       width, 'prediction')])
        path = osp.join(out_dir, osp.splitext(file_name)[0] + '.png')
        pair.save(path)
        paths.append(path)
        if len(pairs) < num_grid:
            pairs.append(pair)
    grid_path = None
    if pairs:
        grid_path = osp.join(out_dir, 'grid.png')
        grid(pairs, grid_columns).save(grid_path)
    return paths, grid_path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('preds', help='.pkl written by tools/test.py --out')
    parser.add_argument('ann_file', help='COCO panoptic json of the split')
    parser.add_argument('seg_dir', help='its panoptic PNGs')
    parser.add_argument('--out-dir', default='overlays')
    parser.add_argument('--width', type=int, default=512,
                        help='width of each panel in pixels')
    parser.add_argument('--grid', type=int, default=6,
                        help='images in grid.png')
    parser.add_argument('--limit', type=int, help='draw only the first N images')
    args = parser.parse_args(argv)
    from mmengine.fileio import load
    paths, grid_path = draw_overlays(load(args.preds), args.ann_file, args.seg_dir,
                                     args.out_dir, width=args.width,
                                     num_grid=args.grid, limit=args.limit)
    print(f'overlays: {len(paths)} PNGs in {args.out_dir}, grid: {grid_path}')


if __name__ == '__main__':
    main()
