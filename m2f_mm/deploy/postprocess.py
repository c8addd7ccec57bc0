"""Panoptic, instance and semantic results from an exported model's outputs,
in numpy alone (no torch), for onnxruntime and other deployments.

:func:`postprocess` is the one entry point: it takes one image's
``cls_logits`` (Q, K+1) and ``mask_logits`` (Q, H/4, W/4) as the exported
graph returns them and gives what :mod:`m2f_mm.models.heads.fusion` gives in
PyTorch for the same logits: the mask logits are resized to the padded input
(bilinear, ``align_corners=False``), cropped to the image, resized to the
original size when the test pipeline resized the image, then fused. The
rules are the same (tests/test_onnx_export.py checks them against the
PyTorch fusion); only float rounding differs (about 1e-7).
"""
from typing import Dict, Optional, Sequence, Tuple

import math

import numpy as np

# MMDet's panoptic id encoding: label + instance_id * INSTANCE_OFFSET
INSTANCE_OFFSET = 1000


def postprocess(cls_logits: np.ndarray, mask_logits: np.ndarray,
                num_classes: int, num_things: int,
                tasks: Sequence[str] = ('panoptic',),
                pad_shape: Optional[Tuple[int, int]] = None,
                img_shape: Optional[Tuple[int, int]] = None,
                ori_shape: Optional[Tuple[int, int]] = None,
                object_mask_thr: float = 0.8, iou_thr: float = 0.8,
                filter_low_score: bool = False,
                max_per_image: int = 100,
                host: str = 'mmdet') -> Dict[str, object]:
    """Fused results of one image.

    Args:
        cls_logits: (Q, K+1) class logits, the last of them "no object".
        mask_logits: (Q, h, w) mask logits at 1/4 of the padded input.
        num_classes: K; num_things: the first ``num_things`` classes are
            things (0 for a semantic-only model).
        tasks: any of ``'panoptic'``, ``'instance'``, ``'semantic'``.
        pad_shape: (H, W) of the padded network input; default 4 × (h, w).
        img_shape: (H, W) of the image inside it (before padding); default
            ``pad_shape``.
        ori_shape: (H, W) the results are given at; default ``img_shape``.
        object_mask_thr, iou_thr, filter_low_score: panoptic settings, as
            in the model's ``test_cfg``.
        max_per_image: instance results kept.
        host: whose inference to follow, ``'mmdet'`` or ``'mmseg'``.
            MMDetection's resizes each image's mask logits from its own
            region of the padded batch (:func:`m2f_mm.models.heads.hosts.
            upsample_valid`) and, for semantic results, resizes the mask
            logits to ``ori_shape``; MMSegmentation's resizes the whole
            padded map and then the per-class scores.

    Returns:
        ``'panoptic'``: (H, W) int32, ``label + instance_id * 1000`` for
        things, ``label`` for stuff, ``num_classes`` for void;
        ``'instance'``: dict of ``labels`` (N,) int64, ``scores`` (N,)
        float32, ``bboxes`` (N, 4) float32 x1y1x2y2, ``masks`` (N, H, W)
        bool, in descending order of class score;
        ``'semantic'``: (H, W) int64 class ids.
    """
    unknown = set(tasks) - {'panoptic', 'instance', 'semantic'}
    if unknown:
        raise ValueError(f'postprocess: unknown tasks {sorted(unknown)}; '
                         "expected 'panoptic', 'instance' or 'semantic'")
    if host not in ('mmdet', 'mmseg'):
        raise ValueError(f"postprocess: host must be 'mmdet' or 'mmseg', got {host!r}")
    cls_logits = np.asarray(cls_logits, dtype=np.float32)
    low = np.asarray(mask_logits, dtype=np.float32)
    if pad_shape is None:
        pad_shape = (4 * low.shape[-2], 4 * low.shape[-1])
    img_shape = tuple(img_shape or pad_shape)[:2]
    ori_shape = tuple(ori_shape or img_shape)[:2]

    valid_only = host == 'mmdet'

    def full_size(queries) -> np.ndarray:
        # only the queries a result needs are resized: the bulk of the time
        return image_mask_logits(low[queries], pad_shape, img_shape, ori_shape,
                                 valid_only)

    probs = softmax(cls_logits)
    results = {}
    if 'panoptic' in tasks:
        results['panoptic'] = _panoptic(probs, full_size, ori_shape, num_classes,
                                        object_mask_thr, iou_thr,
                                        filter_low_score, num_things)
    if 'instance' in tasks:
        results['instance'] = _instance(probs, full_size, ori_shape, num_classes,
                                        num_things, max_per_image)
    if 'semantic' in tasks:
        every = np.arange(len(low))
        if host == 'mmseg':
            cropped = image_mask_logits(low, pad_shape, img_shape, valid_only=False)
            results['semantic'] = _semantic(probs, cropped, ori_shape)
        else:
            results['semantic'] = _semantic(probs, full_size(every))
    return results


def image_mask_logits(mask_logits: np.ndarray,
                      pad_shape: Optional[Tuple[int, int]] = None,
                      img_shape: Optional[Tuple[int, int]] = None,
                      ori_shape: Optional[Tuple[int, int]] = None,
                      valid_only: bool = True) -> np.ndarray:
    """(Q, h, w) mask logits at 1/4 of the padded input → (Q, H, W) at the
    original image size, the way the PyTorch hosts resize them: to the
    padded input (``valid_only``: from the low-resolution rows and columns
    that hold the image, as MMDetection's host does, else the whole map),
    crop the padding, then to the original size."""
    mask_logits = np.asarray(mask_logits, dtype=np.float32)
    h, w = mask_logits.shape[-2:]
    if pad_shape is None:
        pad_shape = (4 * h, 4 * w)
    img_shape = tuple(img_shape or pad_shape)[:2]
    ori_shape = tuple(ori_shape or img_shape)[:2]
    out_h, out_w = int(pad_shape[0]), int(pad_shape[1])
    sy, sx = out_h / h, out_w / w
    cells = (min(h, math.ceil(img_shape[0] / sy)), min(w, math.ceil(img_shape[1] / sx)))
    if valid_only and cells != (h, w):
        size = (min(out_h, round(cells[0] * sy)), min(out_w, round(cells[1] * sx)))
        out = resize_bilinear(mask_logits[:, :cells[0], :cells[1]], size, crop=img_shape)
        if out.shape[-2:] != img_shape:  # beyond the resized cells: 0
            full = np.zeros((len(out), *img_shape), dtype=np.float32)
            full[:, :out.shape[1], :out.shape[2]] = out
            out = full
    else:
        out = resize_bilinear(mask_logits, pad_shape, crop=img_shape)
    if ori_shape != img_shape:
        out = resize_bilinear(out, ori_shape)
    return out


def resize_bilinear(x: np.ndarray, size: Tuple[int, int],
                    crop: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """``F.interpolate(x, size, mode='bilinear', align_corners=False)`` of
    (N, h, w) float32 maps, in float32 (no antialiasing); with ``crop``,
    only its top-left (H', W') part is computed."""
    h, w = x.shape[-2:]
    out_h, out_w = int(size[0]), int(size[1])
    crop_h, crop_w = (out_h, out_w) if crop is None else (int(crop[0]), int(crop[1]))
    if (h, w) == (out_h, out_w):
        return x[:, :crop_h, :crop_w]
    y0, y1, wy0, wy1 = (a[:crop_h] for a in _source_index(h, out_h))
    x0, x1, wx0, wx1 = (a[:crop_w] for a in _source_index(w, out_w))
    # along W first, then H, as PyTorch does; a few maps at a time through
    # reused buffers (fresh full-size temporaries cost more in page faults
    # than the arithmetic)
    cols = x[:, :, x0]  # N×h×W'
    cols *= wx0
    part = x[:, :, x1]
    part *= wx1
    cols += part
    out = np.empty((len(x), len(y0), len(x0)), dtype=np.float32)
    buf = np.empty((min(8, len(x)), len(y0), len(x0)), dtype=np.float32)
    wy0, wy1 = wy0[:, None], wy1[:, None]
    for i in range(0, len(x), len(buf)):
        n = min(len(buf), len(x) - i)
        np.multiply(cols[i:i + n, y0], wy0, out=out[i:i + n])
        np.multiply(cols[i:i + n, y1], wy1, out=buf[:n])
        out[i:i + n] += buf[:n]
    return out


def _source_index(in_size: int, out_size: int):
    """Lower/upper source index and weights of every output index, with
    PyTorch's half-pixel rule (negative sources clamp to 0)."""
    scale = np.float32(in_size) / np.float32(out_size)
    src = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale \
        - np.float32(0.5)
    src = np.maximum(src, np.float32(0))
    lo = src.astype(np.int64)  # floor: src ≥ 0
    hi = np.minimum(lo + 1, in_size - 1)
    w_hi = src - lo.astype(np.float32)
    return lo, hi, np.float32(1) - w_hi, w_hi


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.float32(1) / (np.float32(1) + np.exp(-x))


def _panoptic(probs, full_size, shape, num_classes, object_mask_thr, iou_thr,
              filter_low_score, num_things) -> np.ndarray:
    """Confident non-void queries compete per pixel by score × mask
    probability; a segment that keeps less than ``iou_thr`` of its own
    mask (probability ≥ 0.5) is dropped; instance ids count the kept
    things in query order."""
    labels = probs.argmax(-1)
    scores = probs.max(-1)
    keep = (labels != num_classes) & (scores > object_mask_thr)
    pan = np.full(shape, num_classes, dtype=np.int32)
    if not keep.any():
        return pan
    scores, labels = scores[keep], labels[keep]
    mask_probs = sigmoid(full_size(np.flatnonzero(keep)))  # N×H×W
    winner = (scores[:, None, None] * mask_probs).argmax(0)
    won = winner[None] == np.arange(len(labels))[:, None, None]
    won_area = won.reshape(len(labels), -1).sum(1)
    own = mask_probs >= 0.5
    own_area = own.reshape(len(labels), -1).sum(1)
    if filter_low_score:
        won &= own
    instance_id = 1
    for k, label in enumerate(labels.tolist()):
        a, o = int(won_area[k]), int(own_area[k])
        if a == 0 or o == 0 or a / o < iou_thr:
            continue
        if label < num_things:
            pan[won[k]] = label + instance_id * INSTANCE_OFFSET
            instance_id += 1
        else:
            pan[won[k]] = label
    return pan


def _instance(probs, full_size, shape, num_classes, num_things,
              max_per_image) -> Dict[str, np.ndarray]:
    """The top ``max_per_image`` (query, class) pairs of thing classes,
    scored by class score × mean mask probability inside the mask."""
    scores = probs[:, :-1].reshape(-1)
    k = min(max_per_image, scores.size)
    top = np.argsort(-scores, kind='stable')[:k]  # descending, ties by index
    labels, queries = top % num_classes, top // num_classes
    is_thing = labels < num_things
    top, labels, queries = top[is_thing], labels[is_thing], queries[is_thing]
    if not len(top):  # only stuff among the top pairs
        return dict(labels=np.zeros(0, np.int64), scores=np.zeros(0, np.float32),
                    bboxes=np.zeros((0, 4), np.float32),
                    masks=np.zeros((0, *shape), bool))
    # each distinct query's mask, score and box once
    distinct, which = np.unique(queries, return_inverse=True)
    logits = full_size(distinct)
    binary = logits > 0
    inside = binary.reshape(len(distinct), -1)
    mask_scores = (sigmoid(logits).reshape(len(distinct), -1) * inside).sum(1) / \
        (inside.sum(1).astype(np.float32) + np.float32(1e-6))
    return dict(labels=labels.astype(np.int64),
                scores=(scores[top] * mask_scores[which]).astype(np.float32),
                bboxes=mask_boxes(binary)[which],
                masks=binary[which])


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight x1y1x2y2 boxes of (N, H, W) binary masks, zeros for an empty
    mask (as MMDet's ``mask2bbox``)."""
    boxes = np.zeros((len(masks), 4), dtype=np.float32)
    cols, rows = masks.any(1), masks.any(2)  # N×W, N×H
    for i in range(len(masks)):
        xs, ys = np.flatnonzero(cols[i]), np.flatnonzero(rows[i])
        if len(xs) and len(ys):
            boxes[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return boxes


def _semantic(probs, mask_logits, size=None) -> np.ndarray:
    """argmax_k Σ_q softmax(class)[q, k] · sigmoid(mask)[q], the scores
    resized to ``size`` first when given."""
    q, h, w = mask_logits.shape
    scores = (probs[:, :-1].T @ sigmoid(mask_logits).reshape(q, h * w)).reshape(-1, h, w)
    if size is not None:
        scores = resize_bilinear(scores, size)
    return scores.argmax(0)
