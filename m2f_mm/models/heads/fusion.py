"""Inference: panoptic, instance and semantic results from one set of
(class logits, mask logits), as pure functions plus the registered fusion
head that MMDetection's ``Mask2Former`` calls."""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.structures import InstanceData, PixelData
from torch import Tensor

from m2f_mm.registry import MODELS
from m2f_mm.utils.errors import DataError
from ..utils.targets import ClassCounts, resolve_class_counts

def semantic_inference(cls_logits: Tensor, mask_logits: Tensor) -> Tensor:
    """Per-class scores: Σ_q softmax(class)[q, k] · sigmoid(mask)[q].

    cls_logits: (B, Q, K+1); mask_logits: (B, Q, H, W) → (B, K, H, W).
    """
    probs = cls_logits.softmax(-1)[..., :-1]
    return torch.einsum('bqk,bqhw->bkhw', probs, mask_logits.sigmoid())


# MMDet's panoptic id encoding: label + instance_id * INSTANCE_OFFSET
INSTANCE_OFFSET = 1000


def panoptic_fusion(cls_logits: Tensor, mask_logits: Tensor, num_classes: int,
                    num_things: int, object_mask_thr: float = 0.8,
                    iou_thr: float = 0.8, filter_low_score: bool = False
                    ) -> Tensor:
    """Panoptic map of one image.

    Queries with a non-void class scoring > ``object_mask_thr`` compete per
    pixel by score × mask probability; a segment whose won area is below
    ``iou_thr`` of its own mask (prob ≥ 0.5) is dropped.

    cls_logits: (Q, K+1); mask_logits: (Q, H, W) → (H, W) int32 with
    ``label + instance_id * INSTANCE_OFFSET`` for things, ``label`` for
    stuff and ``num_classes`` for void.

    MMDet's loop over the segments, without it: one host synchronisation
    (which queries are kept) instead of several per segment on CUDA (two
    area reads and a boolean-mask write).
    """
    scores, labels = cls_logits.softmax(-1).max(-1)
    keep = (labels != num_classes) & (scores > object_mask_thr)
    h, w = mask_logits.shape[-2:]
    pan = torch.full((h, w), num_classes, dtype=torch.int32,
                     device=mask_logits.device)
    kept_queries = keep.nonzero()[:, 0]  # the one host round trip
    if not kept_queries.numel():
        return pan
    scores, labels = scores[kept_queries], labels[kept_queries]
    probs = mask_logits[kept_queries].sigmoid()  # N×H×W
    winner = (scores[:, None, None] * probs).argmax(0)
    won = winner[None] == torch.arange(len(labels), device=winner.device)[:, None, None]
    won_area = won.flatten(1).sum(1)
    own = probs >= 0.5
    own_area = own.flatten(1).sum(1)
    # a segment stays where its won area is at least iou_thr of its own
    # (divided in double precision, as Python divides the two counts)
    kept = (won_area > 0) & (own_area > 0) & (
        won_area.double() / own_area.double() >= iou_thr)
    is_thing = labels < num_things
    instance_id = torch.cumsum(kept & is_thing, 0)  # 1, 2, ... in query order
    segment = torch.where(is_thing, labels + instance_id * INSTANCE_OFFSET,
                          labels).to(torch.int32)
    take = kept[winner]  # H×W: the pixel's winner is a kept segment
    if filter_low_score:
        take &= own.gather(0, winner[None])[0]
    return torch.where(take, segment[winner], pan)


def instance_fusion(cls_logits: Tensor, mask_logits: Tensor, num_classes: int,
                    num_things: int, max_per_image: int = 100) -> InstanceData:
    """Top ``max_per_image`` (query, class) pairs among thing classes, scored
    by class score × mean mask probability inside the binary mask.

    cls_logits: (Q, K+1); mask_logits: (Q, H, W).
    """
    scores = cls_logits.softmax(-1)[:, :-1].flatten()
    k = min(max_per_image, scores.numel())
    top_scores, top_idx = scores.topk(k, sorted=False)
    labels = top_idx % num_classes
    query_idx = torch.div(top_idx, num_classes, rounding_mode='floor')
    things = (labels < num_things).nonzero()[:, 0]  # one host round trip
    top_scores, labels, query_idx = top_scores[things], labels[things], query_idx[things]
    # one score and box per distinct query (top-k often repeats queries
    # under different classes); the masks are indexed out at the end
    queries, which = torch.unique(query_idx, return_inverse=True)
    logits = (mask_logits if len(queries) == len(mask_logits) else
              mask_logits[queries])
    binary = logits > 0
    mask_scores = _mean_prob_inside(logits, binary)
    return InstanceData(bboxes=mask_boxes(binary)[which], labels=labels,
                        scores=top_scores * mask_scores[which],
                        masks=binary[which])


def mask_boxes(masks: Tensor) -> Tensor:
    """MMDet's ``mask2bbox`` without its loop over the masks (two
    ``nonzero`` and four ``.item()`` per mask: six host synchronisations on
    CUDA): the (x0, y0, x1, y1) box of each (N, H, W) boolean mask's
    pixels, x1 and y1 one past the last, float32; zeros for an empty mask."""
    h, w = masks.shape[1:]
    cols, rows = masks.any(1), masks.any(2)  # N×W, N×H
    xs = torch.arange(w, device=masks.device)
    ys = torch.arange(h, device=masks.device)
    boxes = torch.stack([torch.where(cols, xs, w).amin(1),
                         torch.where(rows, ys, h).amin(1),
                         torch.where(cols, xs, -1).amax(1) + 1,
                         torch.where(rows, ys, -1).amax(1) + 1], 1).float()
    return boxes * cols.any(1, keepdim=True)  # zeros where empty


def _mean_prob_inside(logits: Tensor, binary: Tensor, rows: int = 8) -> Tensor:
    """Mean sigmoid of ``logits`` (N, H, W) where ``binary``, per mask: a few
    masks at a time through one reused buffer, not N full-size temporaries
    (about 6× faster than the one-shot expression at 100 × 512²)."""
    flat, inside = logits.flatten(1), binary.flatten(1)
    sums = logits.new_empty(len(flat))
    counts = logits.new_empty(len(flat))
    buf = logits.new_empty((min(rows, len(flat)), flat.shape[1]))
    for start in range(0, len(flat), rows):
        end = min(start + rows, len(flat))
        chunk = buf[:end - start]
        chunk.copy_(inside[start:end])
        torch.sum(chunk, dim=1, out=counts[start:end])
        chunk.mul_(flat[start:end].sigmoid())
        torch.sum(chunk, dim=1, out=sums[start:end])
    return sums / (counts + 1e-6)


@MODELS.register_module()
class Mask2FormerFusionHead(BaseModule):
    """Turns the head's last prediction into MMDet results.

    ``test_cfg``: ``panoptic_on`` (True), ``instance_on`` (False),
    ``semantic_on`` (False), ``object_mask_thr`` (0.8), ``iou_thr`` (0.8),
    ``max_per_image`` (100), ``filter_low_score`` (False).

    The class counts are the head's: ``m2f_mm.Mask2Former`` gives them to
    this head (:meth:`configure`). Counts given here must equal the head's.
    """

    def __init__(self, num_things_classes: Optional[int] = None,
                 num_stuff_classes: Optional[int] = None,
                 test_cfg: Optional[Dict] = None, init_cfg=None, **kwargs) -> None:
        super().__init__(init_cfg=init_cfg)
        self.counts: Optional[ClassCounts] = None
        if num_things_classes is not None or num_stuff_classes is not None:
            self.counts = resolve_class_counts(num_things_classes, num_stuff_classes,
                                               owner='Mask2FormerFusionHead')
        self.test_cfg = dict(test_cfg or {})

    def configure(self, counts: ClassCounts, owner: str = 'the head') -> None:
        """Take the head's class counts; counts given in the config must be
        the same (a one-line error naming both otherwise)."""
        counts = ClassCounts(*counts)
        if self.counts is not None and self.counts != counts:
            raise DataError(f'Mask2FormerFusionHead has {self.counts} but {owner} '
                            f'has {counts}; declare the counts in the head only',
                            kind='class mismatch')
        self.counts = counts

    @property
    def num_things_classes(self) -> int:
        return self._counts().things

    @property
    def num_stuff_classes(self) -> int:
        return self._counts().stuff

    @property
    def num_classes(self) -> int:
        return self._counts().total

    def _counts(self) -> ClassCounts:
        if self.counts is None:
            raise ValueError('Mask2FormerFusionHead: no class counts; use it in '
                             'm2f_mm.Mask2Former (which gives it the head\'s) or '
                             'give num_things_classes and num_stuff_classes')
        return self.counts

    def loss(self, *args, **kwargs) -> dict:
        return dict()  # nothing to train

    def predict(self, mask_cls_results: Tensor, mask_pred_results: Tensor,
                batch_data_samples: list, rescale: bool = False,
                **kwargs) -> List[dict]:
        """Per image a dict with ``pan_results`` (PixelData),
        ``ins_results`` (InstanceData) and/or ``sem_results`` (PixelData),
        as switched on in ``test_cfg``.

        Args:
            mask_cls_results: (B, Q, K+1); mask_pred_results: (B, Q, H, W) at
                the padded input size.
        """
        cfg = self.test_cfg
        results = []
        for cls_logits, mask_logits, sample in zip(mask_cls_results,
                                                   mask_pred_results,
                                                   batch_data_samples):
            meta = sample.metainfo
            h, w = meta['img_shape'][:2]
            mask_logits = mask_logits[:, :h, :w]
            if rescale and tuple(meta['ori_shape'][:2]) != (h, w):
                # (at the same size, bilinear resizing is the identity)
                mask_logits = F.interpolate(mask_logits[:, None],
                                            size=tuple(meta['ori_shape'][:2]),
                                            mode='bilinear', align_corners=False)[:, 0]
            result = {}
            if cfg.get('panoptic_on', True):
                result['pan_results'] = PixelData(sem_seg=panoptic_fusion(
                    cls_logits, mask_logits, self.num_classes,
                    self.num_things_classes, cfg.get('object_mask_thr', 0.8),
                    cfg.get('iou_thr', 0.8), cfg.get('filter_low_score', False))[None])
            if cfg.get('instance_on', False):
                result['ins_results'] = instance_fusion(
                    cls_logits, mask_logits, self.num_classes,
                    self.num_things_classes, cfg.get('max_per_image', 100))
            if cfg.get('semantic_on', False):
                seg = semantic_inference(cls_logits[None], mask_logits[None])[0]
                result['sem_results'] = PixelData(sem_seg=seg.argmax(0, keepdim=True))
            results.append(result)
        return results
