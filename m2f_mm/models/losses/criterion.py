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
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.dist import all_reduce, get_world_size
from torch import Tensor, nn

from m2f_mm.ops import chunks
from m2f_mm.registry import TASK_UTILS, build
from m2f_mm.utils.errors import NonFiniteError, current_iteration
from ..utils.point_sample import point_sample, sample_targets, uncertain_point_coords
from .mask_losses import class_loss, full_mask_losses, point_bce_loss, point_dice_loss

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

    def forward(self, all_cls: List[Tensor], all_masks: List[Tensor],
                targets: Targets, image_names: Optional[Sequence] = None
                ) -> Dict[str, Tensor]:
        """Losses of every prediction set, computed in float32.

        Args:
            all_cls: S × (B, Q, K+1); all_masks: S × (B, Q, h, w).
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
        with torch.autocast(all_masks[0].device.type, enabled=False):
            all_cls = [c.float() for c in all_cls]  # no copy when float32
            all_masks = [m.float() for m in all_masks]
            _check_finite(all_cls, all_masks, names)
            return self._losses(all_cls, all_masks, targets, names)

    def _losses(self, all_cls: List[Tensor], all_masks: List[Tensor],
                targets: Targets, names: List) -> Dict[str, Tensor]:
        num_sets = len(all_cls)
        cls = torch.stack(all_cls)  # S×B×Q×(K+1)
        q = cls.shape[2]
        num_matched = sum(min(len(labels), q) for labels, _ in targets)
        match_points, candidates, uniform = self._draw_points(
            num_sets, len(targets), num_matched, cls.device)

        matched = self._match(cls, all_masks, targets, match_points, names)
        labels = cls.new_full(cls.shape[:3], self.num_classes, dtype=torch.long)
        for i, (s_idx, q_idx, g_idx) in enumerate(matched):
            labels[s_idx, i, q_idx] = targets[i][0][g_idx]
        loss_cls = class_loss(cls.flatten(1, 2).float(), labels.flatten(1),
                              self.class_weight)

        # mask terms are averaged over the matched targets of the batch (at
        # least one per image), over all processes
        num_masks = cls.new_tensor(float(sum(max(min(len(t[0]), q), 1)
                                             for t in targets)))
        if get_world_size() > 1:
            all_reduce(num_masks, op='mean')
        num_masks = max(num_masks.item(), 1.0)
        loss_mask, loss_dice = self._mask_losses(all_masks, targets, matched,
                                                 candidates, uniform)
        loss_mask, loss_dice = loss_mask / num_masks, loss_dice / num_masks
        w = self.loss_weights
        losses = {}
        for s in range(num_sets):
            prefix = '' if s == num_sets - 1 else f'd{s}.'
            losses[f'{prefix}loss_cls'] = w['cls'] * loss_cls[s]
            losses[f'{prefix}loss_mask'] = w['mask'] * loss_mask[s]
            losses[f'{prefix}loss_dice'] = w['dice'] * loss_dice[s]
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
    def _match(self, cls: Tensor, all_masks: List[Tensor], targets: Targets,
               points: Tensor, names: List) -> List[Tuple[Tensor, Tensor, Tensor]]:
        """Per image: set, query and target indices of its matches, ordered
        by set, then query."""
        num_sets, _, q = cls.shape[:3]
        matched = []
        for i, (gt_labels, gt_masks) in enumerate(targets):
            pairs = []
            # a few sets at a time: their S×Q×P temporaries stay small
            for sets in chunks(num_sets, q * self.num_points):
                point_logits = None
                if gt_labels.numel():
                    point_logits = torch.cat([  # each set at its own points
                        point_sample(all_masks[s][i:i + 1], points[s, i:i + 1])
                        for s in sets])  # s×Q×P
                pairs += self.assigner.assign(
                    cls[sets.start:sets.stop, i], point_logits, gt_labels,
                    gt_masks, points[sets.start:sets.stop, i],
                    where=_where(names[i]))
            matched.append((
                torch.cat([torch.full_like(r, s) for s, (r, _) in enumerate(pairs)]),
                torch.cat([r for r, _ in pairs]), torch.cat([c for _, c in pairs])))
        return matched

    def _mask_losses(self, all_masks: List[Tensor], targets: Targets,
                     matched: list, candidates: Tensor, uniform: Tensor
                     ) -> Tuple[Tensor, Tensor]:
        """Summed BCE and Dice of the matched masks of each set, (S,) each."""
        num_sets, num_images = len(all_masks), len(targets)
        # matched predictions ordered by set, then image, then query
        s_all = torch.cat([m[0] for m in matched])
        img_all = torch.cat([torch.full_like(m[0], i) for i, m in enumerate(matched)])
        q_all = torch.cat([m[1] for m in matched])
        g_all = torch.cat([m[2] for m in matched])
        if s_all.numel() == 0:
            zero = sum(m.sum() for m in all_masks) * 0.0  # keeps them in the graph
            return zero.expand(num_sets), zero.expand(num_sets)
        order = torch.argsort(s_all * num_images + img_all, stable=True)
        s_all, img_all, q_all, g_all = (s_all[order], img_all[order],
                                        q_all[order], g_all[order])
        set_sizes = torch.bincount(s_all, minlength=num_sets).tolist()
        pred = torch.cat([m[i, q] for m, i, q in zip(
            all_masks, img_all.split(set_sizes), q_all.split(set_sizes))])  # M×h×w

        if self.point_sampled_loss:
            with torch.no_grad():
                coords = uncertain_point_coords(pred.detach()[:, None], candidates,
                                                self.num_uncertain, uniform)  # M×P×2
                point_tgt = torch.empty(coords.shape[:2], device=coords.device,
                                        dtype=pred.dtype)
                for i, (_, gt_masks) in enumerate(targets):
                    sel = (img_all == i).nonzero().squeeze(1)
                    if sel.numel():
                        point_tgt[sel] = sample_targets(gt_masks, g_all[sel],
                                                        coords[sel]).to(pred.dtype)
            point_pred = point_sample(pred[:, None], coords)[:, 0]  # M×P
            bce = point_bce_loss(point_pred, point_tgt)
            dice = point_dice_loss(point_pred, point_tgt)
        else:
            tgt = torch.stack([targets[i][1][g] for i, g in zip(
                img_all.tolist(), g_all.tolist())])
            bce, dice = full_mask_losses(pred, tgt)
        return (bce.new_zeros(num_sets).index_add(0, s_all, bce),
                dice.new_zeros(num_sets).index_add(0, s_all, dice))


def _where(name) -> str:
    it = current_iteration()
    return (f'iteration {it}, ' if it is not None else '') + str(name)


def _check_finite(all_cls: List[Tensor], all_masks: List[Tensor],
                  names: List) -> None:
    """A one-line NonFiniteError naming the first image whose predictions
    (in any set) hold NaN or inf."""
    finite = [c.isfinite().flatten(1).all(1) & m.isfinite().flatten(1).all(1)
              for c, m in zip(all_cls, all_masks)]  # S × (B,)
    ok = torch.stack(finite)  # S×B
    if bool(ok.all()):  # one sync per call
        return
    i = int((~ok).any(0).nonzero()[0])
    sets = (~ok[:, i]).nonzero()[:, 0].tolist()
    raise NonFiniteError(
        f'{_where(names[i])}: the predicted class or mask logits of decoder '
        f'set(s) {sets} have NaN or inf (diverged: lower the learning rate; '
        'with --amp in float16, try --amp-dtype bfloat16)')
