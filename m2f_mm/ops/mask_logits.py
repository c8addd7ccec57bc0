"""Mask logits of every prediction set: ``einsum('bqc,bchw->bqhw', embed,
mask_features)``, plain or, on CPU in training, with one backward for all
sets (:class:`MaskLogitsOfSets`).

The decoder asks :func:`mask_logit_products` for a product object, calls it
once per prediction set and hands it the list of logits at the end::

    products = mask_logit_products(mask_features)
    logits = [products(embed) for embed in embeds]
    logits = products.collect(logits)
"""
from typing import List

import torch
from torch import Tensor

from .fast_paths import fast_paths_enabled


class PlainMaskLogits:
    """The reference: one einsum (and one autograd node) per set."""

    def __init__(self, mask_features: Tensor) -> None:
        # (B, C, h, w) rows for the products, whatever layout the convolutions
        # left (channels-last on CPU)
        self.mask_features = mask_features.contiguous()

    def __call__(self, embed: Tensor) -> Tensor:
        return torch.einsum('bqc,bchw->bqhw', embed, self.mask_features)

    def collect(self, logits: List[Tensor]) -> List[Tensor]:
        return logits


class FusedMaskLogits(PlainMaskLogits):
    """Each set's logits computed without autograd (the decoder needs them
    before the next layer runs); :meth:`collect` joins all sets to the graph
    through one :class:`MaskLogitsOfSets` node."""

    def __init__(self, mask_features: Tensor) -> None:
        super().__init__(mask_features)
        self.embeds: List[Tensor] = []

    def __call__(self, embed: Tensor) -> Tensor:
        b, c, h, w = self.mask_features.shape
        with torch.no_grad():
            logits = torch.bmm(embed, self.mask_features.view(b, c, h * w))
        self.embeds.append(embed)
        return logits.view(b, -1, h, w)

    def collect(self, logits: List[Tensor]) -> List[Tensor]:
        return list(MaskLogitsOfSets.apply(self.mask_features, len(self.embeds),
                                           *self.embeds, *logits))


def mask_logit_products(mask_features: Tensor) -> PlainMaskLogits:
    """The fused products on CPU when autograd records and no autocast is
    on (and the fast paths are), the plain ones otherwise."""
    if fast_paths_enabled() and mask_features.device.type == 'cpu' and \
            torch.is_grad_enabled() and mask_features.requires_grad and \
            not torch.is_autocast_enabled('cpu'):
        return FusedMaskLogits(mask_features)
    return PlainMaskLogits(mask_features)


class MaskLogitsOfSets(torch.autograd.Function):
    """The mask logits of all S prediction sets as one autograd node.

    The logits pass through unchanged; the backward gathers, per image, the
    rows of every set that received a gradient (the losses supervise only
    matched queries, a few per set) and makes the feature gradient one
    product over all of them, instead of one product and one accumulation
    of a full-size gradient per set.

    ``apply(features (B, C, h, w), S, *embeds (B, Q, C), *logits (B, Q, h, w))``
    returns the S logits.
    """

    @staticmethod
    def forward(ctx, features: Tensor, num_sets: int, *tensors: Tensor):
        ctx.save_for_backward(features, *tensors[:num_sets])
        return tensors[num_sets:]

    @staticmethod
    def backward(ctx, *grads):
        features, *embeds = ctx.saved_tensors
        b, c, h, w = features.shape
        features = features.reshape(b, c, h * w)
        need_f = ctx.needs_input_grad[0]
        grad_features = features.new_zeros(features.shape) if need_f else None
        grad_embeds = [torch.zeros_like(e) if ctx.needs_input_grad[2 + s] and
                       grads[s] is not None else None
                       for s, e in enumerate(embeds)]
        for i in range(b):
            picked = []  # (set, rows, their gradient R×hw)
            for s, grad in enumerate(grads):
                if grad is None:
                    continue
                g = grad[i].reshape(-1, h * w)
                rows = g.ne(0).any(-1).nonzero().squeeze(1)
                if rows.numel():
                    picked.append((s, rows, g[rows]))
            if not picked:
                continue
            g_all = torch.cat([g for _, _, g in picked])  # R×hw
            if need_f:
                e_all = torch.cat([embeds[s][i, rows] for s, rows, _ in picked])
                torch.mm(e_all.t(), g_all, out=grad_features[i])
            if any(ge is not None for ge in grad_embeds):
                ge_all = (g_all @ features[i].t()).split(
                    [len(rows) for _, rows, _ in picked])
                for (s, rows, _), ge in zip(picked, ge_all):
                    if grad_embeds[s] is not None:
                        grad_embeds[s][i, rows] = ge
        if grad_features is not None:
            grad_features = grad_features.view(b, c, h, w)
        return (grad_features, None, *grad_embeds, *([None] * len(embeds)))
