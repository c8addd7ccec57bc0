"""The two hosts of :class:`Mask2FormerHead`, as plain functions: targets in
from MMDetection / MMSegmentation data samples, predictions out in the form
each host expects.

MMDetection's ``Mask2Former`` calls ``loss(x, batch_data_samples)`` and
``predict(x, batch_data_samples)``; MMSegmentation's ``EncoderDecoder`` calls
``loss(x, batch_data_samples, train_cfg)`` and
``predict(x, batch_img_metas, test_cfg)``.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from m2f_mm.utils.errors import DataError, data_error, image_of
from ..utils.targets import ClassCounts, mask_targets
from .fusion import semantic_inference

HOSTS = ('mmdet', 'mmseg')
# keys of MMSeg's decode-head configs that its BaseDecodeHead consumes (e.g.
# in_index, channels); they mean nothing here
MMSEG_HEAD_KEYS = frozenset({'in_index', 'channels', 'dropout_ratio',
                             'input_transform', 'norm_cfg', 'act_cfg',
                             'conv_cfg', 'sampler', 'loss_decode'})


def check_host_kwargs(kwargs: Dict) -> None:
    """Only MMSeg's decode-head keys may come beyond the head's own."""
    unknown = set(kwargs) - MMSEG_HEAD_KEYS
    if unknown:
        raise TypeError(f'Mask2FormerHead got unexpected arguments: '
                        f'{sorted(unknown)}')


# ------------------------------------------------------------------ targets
def targets_from_samples(samples: list, counts: ClassCounts,
                         ignore_index: int) -> List[Tuple[Tensor, Tensor]]:
    """Per image (labels (G,), masks (G, H, W) bool) at the padded input
    size of the batch.

    Precomputed ``gt_segments`` (from :class:`BuildMaskTargets`) are used as
    they are; otherwise :func:`mask_targets` derives them from MMDet's
    ``gt_instances`` (+ ``gt_sem_seg`` for stuff) or MMSeg's ``gt_sem_seg``.
    """
    pad_shape = _padded_input_size(samples[0].metainfo)
    return [_targets_of(s, pad_shape, counts, ignore_index) for s in samples]


def _targets_of(sample, pad_shape: Tuple[int, int], counts: ClassCounts,
                ignore_index: int) -> Tuple[Tensor, Tensor]:
    meta = sample.metainfo
    where = meta.get('img_path', '<unknown image>')
    image = image_of(meta)
    if 'gt_segments' in sample:
        where = meta.get('seg_map_path') or where
        built_with = sample.gt_segments.metainfo.get('class_counts')
        if built_with is not None and tuple(built_with) != tuple(counts):
            raise data_error(where, f'its targets were built for '
                             f'{ClassCounts(*built_with)} (BuildMaskTargets) but the '
                             f'head has {counts}; declare the counts in the head only',
                             image, 'gt_segments', kind='class mismatch')
        labels = sample.gt_segments.labels
        masks = _as_mask_tensor(sample.gt_segments.masks, labels.device)
        _check_seg_size(meta, masks.shape[-2:], where, padded=False)
        # BuildMaskTargets checked the labels against these counts on the
        # CPU; others are checked here (a device sync per image)
        if built_with is None:
            bad = (labels < 0) | (labels >= counts.total)
            if bad.any():
                raise data_error(where, f'label {int(labels[bad][0])} is outside '
                                 f'[0, {counts.total}) (num_classes={counts.total})',
                                 image, 'gt_segments.labels', kind='label out of range')
    elif 'gt_instances' in sample:
        labels = sample.gt_instances.labels
        masks = _pad_to(_as_mask_tensor(sample.gt_instances.masks, labels.device),
                        pad_shape, where)
        sem = None
        if 'gt_sem_seg' in sample:
            sem = _pad_to(sample.gt_sem_seg.sem_seg, pad_shape, where,
                          fill=ignore_index)[0]
        labels, masks = mask_targets(labels, masks, sem, counts, ignore_index,
                                     where=where, image=image)
    elif 'gt_sem_seg' in sample:
        where = meta.get('seg_map_path') or where
        sem = sample.gt_sem_seg.data[0]
        _check_seg_size(meta, sem.shape[-2:], where, padded=True)
        labels, masks = mask_targets(None, None, sem, counts, ignore_index,
                                     where=where, image=image)
    else:
        raise data_error(where, 'the data sample has no gt_segments, '
                         'gt_instances or gt_sem_seg to train on', image,
                         kind='pipeline error')
    return labels.long(), _pad_to(masks.bool(), pad_shape, where)


def _padded_input_size(meta: dict) -> Tuple[int, int]:
    """MMDet's ``batch_input_shape``, else MMSeg's ``pad_shape`` (its
    preprocessor pads a training batch to one size)."""
    shape = meta.get('batch_input_shape') or meta.get('pad_shape')
    if shape is None:
        raise ValueError(f'{meta.get("img_path", "<unknown image>")}: the data '
                         'sample records neither batch_input_shape nor '
                         'pad_shape; run it through MMDet\'s or MMSeg\'s data '
                         'preprocessor')
    return int(shape[0]), int(shape[1])


def _check_seg_size(meta: dict, size: Sequence[int], where: str,
                    padded: bool) -> None:
    """A label map must have its image's size. Checked on samples from MMSeg's
    ``SegDataPreProcessor`` (which records ``padding_size`` and sets
    ``img_shape`` to the image before padding); ``padded``: the map was
    padded along with the image."""
    pad = meta.get('padding_size')
    if pad is None or 'img_shape' not in meta:
        return
    h, w = int(size[0]), int(size[1])
    if padded:  # (left, right, top, bottom)
        h, w = h - int(pad[2]) - int(pad[3]), w - int(pad[0]) - int(pad[1])
    ih, iw = (int(s) for s in meta['img_shape'][:2])
    if (h, w) != (ih, iw):
        image = meta.get('img_path')
        image = f'its image {image}' if image else 'its image'
        raise DataError(f'{where}: the label map is {h}x{w} but {image} is '
                        f'{ih}x{iw}', kind='size mismatch')


def _as_mask_tensor(masks, device) -> Tensor:
    if isinstance(masks, Tensor):
        return masks.to(device)
    return masks.to_tensor(dtype=torch.bool, device=device)  # BitmapMasks


def _pad_to(masks: Tensor, shape: Tuple[int, int], where: str, fill: int = 0
            ) -> Tensor:
    """Pad (N, h, w) maps on the bottom/right to the padded input size;
    maps larger than it are an error."""
    h, w = masks.shape[-2:]
    ph, pw = shape
    if (h, w) == (ph, pw):
        return masks
    if h > ph or w > pw:
        raise ValueError(f'{where}: ground-truth masks are {h}x{w}, larger '
                         f'than the padded input {ph}x{pw}')
    out = masks.new_full(masks.shape[:-2] + (ph, pw), fill)
    out[..., :h, :w] = masks
    return out


# -------------------------------------------------------------- predictions
def upsample_valid(mask_logits: Tensor, valid_shapes: Sequence[Sequence[int]],
                   size: Sequence[int]) -> Tensor:
    """Mask logits of a padded batch (B, Q, h, w) resized to the padded input
    ``size`` (B, Q, H, W), each image from its own valid region only.

    Image i covers ``valid_shapes[i]`` (its ``img_shape``) at the top left
    of the input; the low-resolution rows and columns that hold any of it
    are resized by the input's stride and the rest stays 0. Resizing the
    whole padded map would blend the padding's logits into the image's
    border pixels, so an image's results would change with the batch it is
    padded into. Without padding beyond the image this is the plain resize.
    """
    b, q, h, w = mask_logits.shape
    out_h, out_w = int(size[0]), int(size[1])
    sy, sx = out_h / h, out_w / w
    cells = [(min(h, math.ceil(int(vh) / sy)), min(w, math.ceil(int(vw) / sx)))
             for vh, vw in (tuple(v)[:2] for v in valid_shapes)]
    if all(c == (h, w) for c in cells):
        return F.interpolate(mask_logits, size=(out_h, out_w), mode='bilinear',
                             align_corners=False)
    out = mask_logits.new_zeros(b, q, out_h, out_w)
    for i, (ch, cw) in enumerate(cells):
        oh, ow = min(out_h, round(ch * sy)), min(out_w, round(cw * sx))
        out[i, :, :oh, :ow] = F.interpolate(
            mask_logits[i:i + 1, :, :ch, :cw], size=(oh, ow), mode='bilinear',
            align_corners=False)[0]
    return out


def mmdet_predictions(cls_logits: Tensor, mask_logits: Tensor,
                      batch_data_samples: list) -> Tuple[Tensor, Tensor]:
    """What MMDet's fusion head takes: class logits (B, Q, K+1) and mask
    logits at the padded input size (B, Q, H, W), each image's from its own
    valid region (:func:`upsample_valid`); the fusion head crops
    ``img_shape`` and resizes to ``ori_shape``."""
    shape = batch_data_samples[0].metainfo['batch_input_shape']
    valid = [s.metainfo.get('img_shape', shape) for s in batch_data_samples]
    return cls_logits, upsample_valid(mask_logits, valid, shape[:2])


def mmseg_seg_logits(cls_logits: Tensor, mask_logits: Tensor,
                     batch_img_metas: List[dict], test_cfg: Optional[Dict]
                     ) -> Tensor:
    """What MMSeg's EncoderDecoder takes: per-class scores (B, K, H, W) at
    the size of the input (the padded image, or the window in slide mode).

    MMSeg pads a test image by its test_cfg (``size`` / ``size_divisor``,
    images of a batch have one size), not by its batch companions, so the
    plain resize of MMSeg itself keeps results batch-invariant here."""
    meta = batch_img_metas[0]
    # EncoderDecoder.slide_inference writes each window's size into
    # img_shape and leaves pad_shape at the whole padded image's; whole
    # inference runs on the padded image (pad_shape when padded).
    if (test_cfg or {}).get('mode') == 'slide' or meta.get('pad_shape') is None:
        size = meta['img_shape']
    else:
        size = meta['pad_shape']
    mask_logits = F.interpolate(mask_logits, size=tuple(size[:2]),
                                mode='bilinear', align_corners=False)
    return semantic_inference(cls_logits, mask_logits)
