"""The host-facing layer of :class:`Mask2FormerHead`: how targets come in
from MMDetection / MMSegmentation samples and how predictions go out.

MMDetection's ``Mask2Former`` calls ``loss(x, batch_data_samples)`` and
``predict(x, batch_data_samples)``; MMSegmentation's ``EncoderDecoder`` calls
``loss(x, batch_data_samples, train_cfg)`` and
``predict(x, batch_img_metas, test_cfg)``. The two are told apart by what the
second argument holds (data samples or meta dicts).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..utils.targets import panoptic_targets, semantic_to_masks


class HostMixin:
    """Mixed into the head; expects ``forward_features`` and ``loss_by_feat``."""

    def init_host(self, **kwargs) -> None:
        # MMSeg's decode-head configs carry keys its BaseDecodeHead consumes
        # (e.g. in_index, channels, dropout_ratio); they mean nothing here.
        ignored = {'in_index', 'channels', 'dropout_ratio', 'input_transform',
                   'norm_cfg', 'act_cfg', 'conv_cfg', 'sampler', 'loss_decode'}
        unknown = set(kwargs) - ignored
        if unknown:
            raise TypeError(f'Mask2FormerHead got unexpected arguments: '
                            f'{sorted(unknown)}')

    # ------------------------------------------------------------ both hosts
    def forward(self, x: Sequence[Tensor], batch_data_samples=None
                ) -> Tuple[List[Tensor], List[Tensor]]:
        """(class logits, mask logits) of all prediction sets (lists of 1 +
        num_layers), as MMDet's head returns them."""
        return self.forward_features(x)

    def loss(self, x: Sequence[Tensor], batch_data_samples: list,
             train_cfg: Optional[Dict] = None) -> Dict[str, Tensor]:
        all_cls, all_masks = self.forward_features(x)
        pad_shape = _batch_input_shape(batch_data_samples[0].metainfo,
                                       all_masks[0].shape[-2:])
        targets = [self.targets_from_sample(s, pad_shape)
                   for s in batch_data_samples]
        return self.loss_by_feat(all_cls, all_masks, targets)

    def predict(self, x: Sequence[Tensor], batch_data_samples: list,
                test_cfg: Optional[Dict] = None):
        """MMDet: (class logits (B, Q, K+1), mask logits at the padded input
        size (B, Q, H, W)). MMSeg: per-class seg logits (B, K, H, W) at the
        size of the input (the padded image, or the window in slide mode)."""
        all_cls, all_masks = self.forward_features(x)
        cls_logits, mask_logits = all_cls[-1], all_masks[-1]
        if batch_data_samples and isinstance(batch_data_samples[0], dict):
            return self._predict_seg(cls_logits, mask_logits, batch_data_samples,
                                     test_cfg)
        shape = batch_data_samples[0].metainfo['batch_input_shape']
        mask_logits = F.interpolate(mask_logits, size=tuple(shape[:2]),
                                    mode='bilinear', align_corners=False)
        return cls_logits, mask_logits

    # ---------------------------------------------------------------- MMSeg
    def _predict_seg(self, cls_logits: Tensor, mask_logits: Tensor,
                     batch_img_metas: List[dict], test_cfg: Optional[Dict]
                     ) -> Tensor:
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

    # -------------------------------------------------------------- targets
    def targets_from_sample(self, sample, pad_shape: Tuple[int, int]
                            ) -> Tuple[Tensor, Tensor]:
        """(labels (G,), masks (G, H, W) bool) at the padded input size.

        Precomputed ``gt_segments`` (from :class:`BuildMaskTargets`) are used
        as they are; otherwise targets are derived from MMDet's
        ``gt_instances`` (+ ``gt_sem_seg`` for stuff) or MMSeg's
        ``gt_sem_seg``. Errors name the label map when the labels come from
        one (MMSeg's ``seg_map_path``), else the image.
        """
        meta = sample.metainfo
        where = meta.get('img_path', '<unknown image>')
        if 'gt_segments' in sample:
            where = meta.get('seg_map_path') or where
            labels = sample.gt_segments.labels
            masks = _as_mask_tensor(sample.gt_segments.masks, labels.device)
            _check_seg_size(meta, masks.shape[-2:], where, padded=False)
        elif 'gt_instances' in sample:
            inst = sample.gt_instances
            labels = inst.labels
            masks = _as_mask_tensor(inst.masks, labels.device)
            sem = None
            if self.num_stuff_classes > 0 and 'gt_sem_seg' in sample:
                sem = sample.gt_sem_seg.sem_seg.squeeze(0)
                masks, sem = _pad_to(masks, pad_shape, where), _pad_to(
                    sem[None], pad_shape, where, fill=self.ignore_index)[0]
            labels, masks = panoptic_targets(labels, masks, sem,
                                             self.num_things_classes,
                                             self.num_classes)
        elif 'gt_sem_seg' in sample:
            where = meta.get('seg_map_path') or where
            sem = sample.gt_sem_seg.data.squeeze(0)
            _check_seg_size(meta, sem.shape[-2:], where, padded=True)
            labels, masks = semantic_to_masks(sem, 0, 1 << 30)
            keep = labels != self.ignore_index
            labels, masks = labels[keep], masks[keep]
        else:
            raise ValueError(f'{where}: the data sample has no gt_segments, '
                             'gt_instances or gt_sem_seg to train on')
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            bad = labels[(labels < 0) | (labels >= self.num_classes)][0].item()
            raise ValueError(f'{where}: label {bad} is outside [0, '
                             f'{self.num_classes}) (num_classes={self.num_classes})')
        return labels.long(), _pad_to(masks.bool(), pad_shape, where)


def semantic_inference(cls_logits: Tensor, mask_logits: Tensor) -> Tensor:
    """Per-class scores: Σ_q softmax(class)[q, k] · sigmoid(mask)[q].

    cls_logits: (B, Q, K+1); mask_logits: (B, Q, H, W) → (B, K, H, W).
    """
    probs = cls_logits.softmax(-1)[..., :-1]
    return torch.einsum('bqk,bqhw->bkhw', probs, mask_logits.sigmoid())


def _batch_input_shape(meta: dict, mask_size: Sequence[int]) -> Tuple[int, int]:
    """The padded input size: MMDet's ``batch_input_shape``, else MMSeg's
    ``pad_shape`` (its preprocessor pads a training batch to one size), else
    4× the mask logits (stride-4 features)."""
    shape = meta.get('batch_input_shape') or meta.get('pad_shape')
    if shape is None:
        shape = [s * 4 for s in mask_size]
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
        raise ValueError(f'{where}: the label map is {h}x{w} but {image} is '
                         f'{ih}x{iw}')


def _as_mask_tensor(masks, device) -> Tensor:
    if isinstance(masks, Tensor):
        return masks.to(device)
    return masks.to_tensor(dtype=torch.bool, device=device)  # BitmapMasks


def _pad_to(masks: Tensor, shape: Tuple[int, int], where: str, fill: int = 0
            ) -> Tensor:
    """Zero-pad (N, h, w) masks on the bottom/right to the padded input
    size; masks larger than it are an error."""
    h, w = masks.shape[-2:]
    ph, pw = int(shape[0]), int(shape[1])
    if (h, w) == (ph, pw):
        return masks
    if h > ph or w > pw:
        raise ValueError(f'{where}: ground-truth masks are {h}x{w}, larger '
                         f'than the padded input {ph}x{pw}')
    out = masks.new_full(masks.shape[:-2] + (ph, pw), fill)
    out[..., :h, :w] = masks
    return out
