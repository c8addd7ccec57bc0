"""The mask predictions of all prediction sets, with full-resolution mask
logits only where they are used.

A set's mask logits are the product of its mask embeddings with the
per-pixel features, ``einsum('bqc,bchw->bqhw')``. Bilinear resizing and
point sampling are linear per channel, so they commute with that product:
the logits at a set of points are the embeddings times the features
sampled there, and the logits at another resolution the embeddings times
the resized features. The decoder and the criterion use this; the full
(B, Q, H/4, W/4) logits of all 1 + L sets are made only when a caller asks
for them (parity tests, MMDet's layout, export), and in training only the
rows of the matched queries are made (their losses need them).

Two classes answer the criterion's questions the same way:
:class:`MaskEmbeddings` (the decoder's, in training) and :class:`FullMasks`
(logits given as full maps).
"""
from typing import List, Sequence, Union

import torch
from torch import Tensor

from m2f_mm.ops import fast_paths_enabled, mask_point_logits_impl
from ..utils.point_sample import point_sample


class FullMasks:
    """Mask predictions given as full maps: S × (B, Q, h, w)."""

    def __init__(self, masks: Sequence[Tensor]) -> None:
        self.masks = [m.float() for m in masks]  # no copy when float32

    def __len__(self) -> int:
        return len(self.masks)

    @property
    def device(self) -> torch.device:
        return self.masks[0].device

    def finite(self) -> Tensor:
        """(S, B) bool: the set's logits of the image hold no NaN or inf."""
        return torch.stack([m.isfinite().flatten(1).all(1) for m in self.masks])

    def point_logits(self, sets: range, image: int, points: Tensor) -> Tensor:
        """Logits of every query of ``image`` in ``sets`` at each set's own
        points ``points`` (s, P, 2) in [0, 1]: (s, Q, P)."""
        return torch.cat([point_sample(self.masks[s][image:image + 1], points[k:k + 1])
                          for k, s in enumerate(sets)])

    def rows(self, index) -> Tensor:
        """The full logits of the matches of ``index`` (a
        :class:`~m2f_mm.models.losses.match_index.MatchIndex`), in its
        order: (M, h, w)."""
        return torch.cat([m[i, q] for m, i, q in zip(
            self.masks, index.images.split(index.set_sizes),
            index.queries.split(index.set_sizes))])

    def zero(self) -> Tensor:
        """0, connected to every prediction (no match: zero gradients)."""
        return sum(m.sum() for m in self.masks) * 0.0


class MaskEmbeddings(FullMasks):
    """Mask predictions as mask embeddings (S, B, Q, C) (a tensor, or S ×
    (B, Q, C)) and per-pixel features (B, C, h, w); logits are made where
    asked, in float32."""

    def __init__(self, embeds: Union[Tensor, Sequence[Tensor]],
                 features: Tensor) -> None:
        if not isinstance(embeds, Tensor):
            embeds = torch.stack(list(embeds))
        self.embeds = embeds.float()  # S×B×Q×C
        self.features = features.float().contiguous()  # B×C×h×w

    def __len__(self) -> int:
        return self.embeds.shape[0]

    @property
    def device(self) -> torch.device:
        return self.features.device

    def full(self, s: int) -> Tensor:
        """The full mask logits of set ``s``: (B, Q, h, w)."""
        return torch.einsum('bqc,bchw->bqhw', self.embeds[s], self.features)

    def all_full(self) -> List[Tensor]:
        return [self.full(s) for s in range(len(self))]

    def finite(self) -> Tensor:
        feats = self.features.isfinite().flatten(1).all(1)  # B
        return self.embeds.isfinite().flatten(2).all(2) & feats  # S×B

    def point_logits(self, sets: range, image: int, points: Tensor) -> Tensor:
        embeds = self.embeds[sets.start:sets.stop, image]  # s×Q×C
        if mask_point_logits_impl(self.device.type, fast_paths_enabled()) == 'full':
            full = torch.einsum('sqc,chw->sqhw', embeds, self.features[image])
            # one sampling for the sets: grid_sample spreads its batch
            # over the threads (about 2x faster on 2 cores than set by set)
            return point_sample(full, points)
        # the image's features at the points of all sets, in one sampling
        s, p = points.shape[:2]
        sampled = point_sample(self.features[image:image + 1],
                               points.reshape(1, s * p, 2))[0]  # C×sP
        sampled = sampled.view(-1, s, p).transpose(0, 1)  # s×C×P
        return torch.bmm(embeds, sampled)

    def rows(self, index) -> Tensor:
        # the matched embeddings in the match order, each image's rows times
        # its own features
        b, c, h, w = self.features.shape
        embeds = self.embeds[index.sets, index.images, index.queries]  # M×C
        out = embeds.new_empty(embeds.shape[0], h * w)
        for i, at in enumerate(index.points):
            if at is not None:
                out[at.rows] = embeds[at.rows] @ self.features[i].view(c, h * w)
        return out.view(-1, h, w)

    def zero(self) -> Tensor:
        return (self.embeds.sum() + self.features.sum()) * 0.0
