"""Mask2Former's training criterion: Hungarian matching on sampled points,
then class cross-entropy and point-sampled mask BCE and Dice, for every
prediction set (deep supervision).

It runs in float32 whatever the autocast around it: under bf16/fp16 the
sigmoid/softplus sums of the matching costs and the Dice terms lose the
precision that tells near-equal matches apart, and fp16 overflows to inf
(which scipy reports as "cost matrix is infeasible"). A prediction or cost
with NaN or inf stops with a one-line
:class:`~m2f_mm.utils.errors.NonFiniteError` naming the iteration and the
image.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.dist import all_reduce, get_world_size
from torch import Tensor, nn

from m2f_mm.ops import chunks
from m2f_mm.registry import TASK_UTILS, build
from m2f_mm.utils.errors import NonFiniteError, current_iteration
from ..utils.point_sample import point_sample, sample_by_target, uncertain_point_coords
from .mask_losses import class_loss, full_mask_losses, point_bce_loss, point_dice_loss
from ..decoders.mask_predictions import FullMasks
from .match_index import MatchIndex, build_match_index

Targets = List[Tuple[Tensor, Tensor]]  # per image: labels (G,), masks (G, H, W)


class Mask2FormerCriterion(nn.Module):
    """Matching and losses (paper, section 3.3 and 4.1).

    Every random number of one call is drawn from one stream,
    ``torch.rand(..., generator=generator)``, in this order, set by set:
    the uniform matching points of each image (P×2 each), then for the set's
    matched predictions their importance-sampling candidates (3P×2 each) and
    their uniform points (P/4×2 each). That is MMDetection's order, so a
    generator (or global seed) set the same way replays its points.

    Args:
        num_classes: K.
        class_weight: K + 1 cross-entropy weights (the last: no object).
        loss_weights: ``dict(cls=2.0, mask=5.0, dice=5.0)``.
        assigner: config of the matcher (``PointHungarianAssigner``).
        num_points: P (112×112).
        oversample_ratio, importance_sample_ratio: of the loss points.
        point_sampled_loss: False computes BCE/Dice on whole masks (memory
            comparisons only).
        generator: source of the random points (default: torch's global).
    """

    def __init__(self, num_classes: int, class_weight: Sequence[float],
                 loss_weights: Dict[str, float], assigner: Dict,
                 num_points: int = 12544, oversample_ratio: float = 3.0,
                 importance_sample_ratio: float = 0.75,
                 point_sampled_loss: bool = True,
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        if len(class_weight) != num_classes + 1:
            raise ValueError(f'Mask2FormerCriterion: class_weight has '
                             f'{len(class_weight)} entries, expected '
                             f'num_classes + 1 = {num_classes + 1}')
        self.num_classes = num_classes
        self.register_buffer('class_weight', torch.tensor(class_weight,
                                                          dtype=torch.float32),
                             persistent=False)
        self.loss_weights = {**dict(cls=2.0, mask=5.0, dice=5.0), **loss_weights}
        self.assigner = build(assigner, TASK_UTILS)
        self.num_points = num_points
        self.num_candidates = int(num_points * oversample_ratio)
        self.num_uncertain = int(num_points * importance_sample_ratio)
        self.point_sampled_loss = point_sampled_loss
        self.generator = generator

    def forward(self, all_cls: List[Tensor],
                all_masks: Union[Sequence[Tensor], FullMasks],
                targets: Targets, image_names: Optional[Sequence] = None
                ) -> Dict[str, Tensor]:
        """Losses of every prediction set, computed in float32.

        Args:
            all_cls: S × (B, Q, K+1); all_masks: S × (B, Q, h, w), or the
                decoder's :class:`~m2f_mm.models.decoders.MaskEmbeddings`
                (full mask logits made only for the matched queries).
            targets: per image (labels (G,), masks (G, H, W) bool) at the
                padded input size.
            image_names: per image, how errors name it
                (:func:`~m2f_mm.utils.errors.describe_image`).

        Returns:
            ``loss_cls``, ``loss_mask``, ``loss_dice`` of the last set and
            ``d{s}.loss_*`` of the earlier ones.
        """
        names = list(image_names) if image_names is not None else \
            [f'image #{i} of the batch' for i in range(len(targets))]
        masks = all_masks if isinstance(all_masks, FullMasks) else FullMasks(all_masks)
        with torch.autocast(masks.device.type, enabled=False):
            all_cls = [c.float() for c in all_cls]  # no copy when float32
            return self._losses(all_cls, masks, targets, names)

    def _losses(self, all_cls: List[Tensor], all_masks: FullMasks,
                targets: Targets, names: List) -> Dict[str, Tensor]:
        num_sets = len(all_cls)
        cls = torch.stack(all_cls)  # S×B×Q×(K+1)
        q = cls.shape[2]
        num_matched = sum(min(len(labels), q) for labels, _ in targets)
        match_points, candidates, uniform = self._draw_points(
            num_sets, len(targets), num_matched, cls.device)

        index = self._match(cls, all_masks, targets, match_points, names)
        labels = cls.new_full(cls.shape[:3], self.num_classes, dtype=torch.long)
        if index.sets.numel():
            all_labels = torch.cat([t[0] for t in targets])
            labels[index.sets, index.images, index.queries] = \
                all_labels[index.flat_targets]
        loss_cls = class_loss(cls.flatten(1, 2), labels.flatten(1), self.class_weight)

        # mask terms are averaged over the matched targets of the batch (at
        # least one per image), over all processes
        num_masks = float(sum(max(min(len(t[0]), q), 1) for t in targets))
        if get_world_size() > 1:
            total = cls.new_tensor(num_masks)
            all_reduce(total, op='mean')
            num_masks = total.item()
        num_masks = max(num_masks, 1.0)
        loss_mask, loss_dice = self._mask_losses(all_masks, targets, index,
                                                 candidates, uniform)
        loss_mask, loss_dice = loss_mask / num_masks, loss_dice / num_masks
        w = self.loss_weights
        # weighted terms of all sets in one tensor, split by one unbind: a
        # few ops (and backward nodes) instead of two per term
        terms = torch.stack([w['cls'] * loss_cls, w['mask'] * loss_mask,
                             w['dice'] * loss_dice], dim=1).flatten().unbind()
        losses = {}
        for s in range(num_sets):
            prefix = '' if s == num_sets - 1 else f'd{s}.'
            for k, name in enumerate(('loss_cls', 'loss_mask', 'loss_dice')):
                losses[f'{prefix}{name}'] = terms[3 * s + k]
        return losses

    def _draw_points(self, num_sets: int, num_images: int, num_matched: int,
                     device: torch.device) -> Tuple[Tensor, Tensor, Tensor]:
        """Matching points (S, B, P, 2); loss candidates (S·M, 3P, 2) and
        uniform loss points (S·M, P/4, 2) of the M matches of each set."""
        p = self.num_points
        sizes = [num_images * p * 2, num_matched * self.num_candidates * 2,
                 num_matched * (p - self.num_uncertain) * 2]
        where = self.generator.device if self.generator is not None else device
        stream = torch.rand(num_sets * sum(sizes), generator=self.generator,
                            device=where).to(device)
        match, cands, rest = stream.view(num_sets, -1).split(sizes, dim=1)
        return (match.reshape(num_sets, num_images, p, 2),
                cands.reshape(-1, self.num_candidates, 2),
                rest.reshape(-1, p - self.num_uncertain, 2))

    @torch.no_grad()
    def _match(self, cls: Tensor, all_masks: FullMasks, targets: Targets,
               points: Tensor, names: List) -> MatchIndex:
        """Hungarian matching of every set of every image, with one round
        trip to the host: the costs of all of them, and whether each set's
        predictions are finite, go to the host in one copy; scipy solves the
        costs; the indices of all matches come back in one copy
        (:func:`~m2f_mm.models.losses.match_index.build_match_index`)."""
        num_sets, _, q = cls.shape[:3]
        finite = cls.isfinite().flatten(2).all(2) & all_masks.finite()  # S×B
        costs = []
        for i, (gt_labels, gt_masks) in enumerate(targets):
            if not gt_labels.numel():
                costs.append(None)
                continue
            pieces = []
            # a few sets at a time: their S×Q×P temporaries stay small
            for sets in chunks(num_sets, q * self.num_points):
                # each set at its own points: s×Q×P
                point_logits = all_masks.point_logits(
                    sets, i, points[sets.start:sets.stop, i])
                pieces.append(self.assigner.cost_matrices(
                    cls[sets.start:sets.stop, i], point_logits, gt_labels,
                    gt_masks, points[sets.start:sets.stop, i]))
            costs.append(torch.cat(pieces))  # S×Q×G
        host = torch.cat([finite.flatten().float()] +
                         [c.flatten().float() for c in costs if c is not None]
                         ).cpu().numpy()
        _check_finite(host[:finite.numel()].reshape(finite.shape) > 0, names)
        matches, at = [], finite.numel()
        for i, cost in enumerate(costs):
            if cost is None:
                none = np.zeros(0, np.int64)
                matches.append((none, none, none))
                continue
            pairs = self.assigner.solve(host[at:at + cost.numel()].reshape(cost.shape),
                                        where=_where(names[i]))
            at += cost.numel()
            matches.append(tuple(np.concatenate(parts) for parts in zip(*[
                (np.full(len(r), s), r, c) for s, (r, c) in enumerate(pairs)])))
        return build_match_index(matches, num_sets, [len(t[0]) for t in targets],
                                 cls.device)

    def _mask_losses(self, all_masks: FullMasks, targets: Targets,
                     index: MatchIndex, candidates: Tensor, uniform: Tensor
                     ) -> Tuple[Tensor, Tensor]:
        """Summed BCE and Dice of the matched masks of each set, (S,) each."""
        num_sets = len(all_masks)
        if index.sets.numel() == 0:
            zero = all_masks.zero()  # keeps the predictions in the graph
            return zero.expand(num_sets), zero.expand(num_sets)
        pred = all_masks.rows(index)  # M×h×w

        if self.point_sampled_loss:
            with torch.no_grad():
                coords = uncertain_point_coords(pred.detach()[:, None], candidates,
                                                self.num_uncertain, uniform)  # M×P×2
                point_tgt = torch.empty(coords.shape[:2], device=coords.device,
                                        dtype=pred.dtype)
                for (_, gt_masks), at in zip(targets, index.points):
                    if at is not None:
                        point_tgt[at.rows] = sample_by_target(
                            gt_masks, at.used, at.slot, at.rank, at.width,
                            coords[at.rows]).to(pred.dtype)
            point_pred = point_sample(pred[:, None], coords)[:, 0]  # M×P
            bce = point_bce_loss(point_pred, point_tgt)
            dice = point_dice_loss(point_pred, point_tgt)
        else:
            tgt = torch.stack([targets[i][1][g] for i, g in zip(
                index.images_host.tolist(), index.targets_host.tolist())])
            bce, dice = full_mask_losses(pred, tgt)
        return (bce.new_zeros(num_sets).index_add(0, index.sets, bce),
                dice.new_zeros(num_sets).index_add(0, index.sets, dice))


def _where(name) -> str:
    it = current_iteration()
    return (f'iteration {it}, ' if it is not None else '') + str(name)


def _check_finite(ok: np.ndarray, names: List) -> None:
    """A one-line NonFiniteError naming the first image whose predictions
    (in any set) hold NaN or inf; ``ok`` (S, B) says which are finite."""
    if ok.all():
        return
    i = int(np.nonzero(~ok.all(0))[0][0])
    sets = np.nonzero(~ok[:, i])[0].tolist()
    raise NonFiniteError(
        f'{_where(names[i])}: the predicted class or mask logits of decoder '
        f'set(s) {sets} have NaN or inf (diverged: lower the learning rate; '
        'with --amp in float16, try --amp-dtype bfloat16)')
