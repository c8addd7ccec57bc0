"""Mask2Former head: pixel decoder + masked-attention decoder + prediction
heads, with the point-sampled Hungarian losses.

One class serves two hosts: ``mmdet.Mask2Former`` (as ``panoptic_head``) and
``mmseg.EncoderDecoder`` (as ``decode_head``); the host-specific part (how
targets come in, how predictions go out) is in ``hosts.py``.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.dist import get_world_size, all_reduce
from mmengine.model import BaseModule, caffe2_xavier_init
from torch import Tensor, nn

from m2f_mm.registry import MODELS, TASK_UTILS, build
from ..decoders.masked_attention_decoder import (MaskedAttentionDecoder,
                                                 attention_keep_mask)
from ..losses.mask_losses import class_loss, full_mask_losses
from ..utils.point_sample import (CHUNK_ELEMENTS, point_sample,
                                  uncertain_point_coords)
from ..utils.position_encoding import SinePositionEmbedding
from .hosts import HostMixin

Targets = List[Tuple[Tensor, Tensor]]  # per image: labels (G,), masks (G, H, W)


@MODELS.register_module()
class Mask2FormerHead(HostMixin, BaseModule):
    """Mask2Former head.

    Args:
        in_channels: backbone channels per level, finest first.
        strides: their strides.
        num_things_classes, num_stuff_classes: thing and stuff classes; for
            semantic segmentation use ``num_classes`` alone (all "stuff").
        num_classes: total classes; defaults to things + stuff.
        feat_channels: pixel decoder / query channels (C=256).
        out_channels: mask-embedding channels.
        num_queries: N (100; 200 for Swin-L COCO panoptic).
        num_transformer_feat_level: pyramid levels fed round robin (3).
        pixel_decoder: config of the pixel decoder (``in_channels``,
            ``feat_channels``, ``out_channels`` are filled in).
        transformer_decoder: ``dict(num_layers=9, num_heads=8, ffn_dims=2048)``.
        enforce_decoder_input_project: 1×1 projections even when channels
            already match.
        loss_weights: ``dict(cls=2.0, mask=5.0, dice=5.0)``.
        no_object_weight: class weight of "no object" (0.1).
        class_weight: full (num_classes + 1) class weights; overrides
            ``no_object_weight``.
        train_cfg: ``assigner`` (default ``PointHungarianAssigner``),
            ``num_points`` (12544), ``oversample_ratio`` (3.0),
            ``importance_sample_ratio`` (0.75), ``point_sampled_loss`` (True;
            False computes BCE/Dice on whole masks, for memory comparisons).
        test_cfg: kept for the hosts.
        ignore_index: label of void pixels in semantic maps (255).
        align_corners: read by MMSeg's EncoderDecoder.
    """

    def __init__(self,
                 in_channels: Sequence[int] = (256, 512, 1024, 2048),
                 strides: Sequence[int] = (4, 8, 16, 32),
                 num_things_classes: int = 80,
                 num_stuff_classes: int = 53,
                 num_classes: Optional[int] = None,
                 feat_channels: int = 256,
                 out_channels: int = 256,
                 num_queries: int = 100,
                 num_transformer_feat_level: int = 3,
                 pixel_decoder: Dict = dict(type='MSDeformAttnPixelDecoder'),
                 transformer_decoder: Dict = dict(
                     num_layers=9, num_heads=8, ffn_dims=2048),
                 enforce_decoder_input_project: bool = False,
                 loss_weights: Dict = dict(cls=2.0, mask=5.0, dice=5.0),
                 no_object_weight: float = 0.1,
                 class_weight: Optional[Sequence[float]] = None,
                 train_cfg: Optional[Dict] = None,
                 test_cfg: Optional[Dict] = None,
                 ignore_index: int = 255,
                 align_corners: bool = False,
                 threshold: Optional[float] = None,
                 init_cfg: Optional[Dict] = None,
                 **host_kwargs) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes is None:
            num_classes = num_things_classes + num_stuff_classes
        elif num_things_classes + num_stuff_classes != num_classes:
            # semantic segmentation: every class is "stuff"
            num_things_classes, num_stuff_classes = 0, num_classes
        self.num_things_classes = num_things_classes
        self.num_stuff_classes = num_stuff_classes
        self.num_classes = num_classes
        self.num_queries = num_queries
        self.num_transformer_feat_level = num_transformer_feat_level
        self.ignore_index = ignore_index
        self.align_corners = align_corners
        # MMSeg's EncoderDecoder thresholds single-channel outputs
        self.threshold = 0.3 if threshold is None and num_classes == 1 else threshold
        self.out_channels = num_classes  # what MMSeg reads as seg-logit channels
        self.init_host(**host_kwargs)

        pixel_decoder = dict(pixel_decoder)
        pixel_decoder.update(in_channels=list(in_channels),
                             strides=list(strides),
                             feat_channels=feat_channels,
                             out_channels=out_channels)
        self.pixel_decoder = build(pixel_decoder, MODELS)
        self.transformer_decoder = MaskedAttentionDecoder(
            embed_dims=feat_channels, **transformer_decoder)
        self.decoder_input_projs = nn.ModuleList(
            nn.Conv2d(feat_channels, feat_channels, 1)
            if enforce_decoder_input_project else nn.Identity()
            for _ in range(num_transformer_feat_level))
        self.position_embedding = SinePositionEmbedding(feat_channels // 2)
        self.query_embed = nn.Embedding(num_queries, feat_channels)
        self.query_feat = nn.Embedding(num_queries, feat_channels)
        self.level_embed = nn.Embedding(num_transformer_feat_level, feat_channels)
        self.cls_embed = nn.Linear(feat_channels, num_classes + 1)
        self.mask_embed = nn.Sequential(
            nn.Linear(feat_channels, feat_channels), nn.ReLU(inplace=True),
            nn.Linear(feat_channels, feat_channels), nn.ReLU(inplace=True),
            nn.Linear(feat_channels, out_channels))

        if class_weight is None:
            class_weight = [1.0] * num_classes + [no_object_weight]
        if len(class_weight) != num_classes + 1:
            raise ValueError(f'Mask2FormerHead: class_weight has {len(class_weight)} '
                             f'entries, expected num_classes + 1 = {num_classes + 1}')
        self.register_buffer('class_weight', torch.tensor(class_weight),
                             persistent=False)
        self.loss_weights = dict(cls=2.0, mask=5.0, dice=5.0)
        self.loss_weights.update(loss_weights)

        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = test_cfg
        self.num_points = self.train_cfg.get('num_points', 12544)
        assigner = dict(self.train_cfg.get(
            'assigner', dict(type='PointHungarianAssigner')))
        if 'PointHungarianAssigner' in str(assigner.get('type')):
            assigner.setdefault('num_points', self.num_points)
        self.assigner = build(assigner, TASK_UTILS)
        self.oversample_ratio = self.train_cfg.get('oversample_ratio', 3.0)
        self.importance_sample_ratio = self.train_cfg.get(
            'importance_sample_ratio', 0.75)
        self.point_sampled_loss = self.train_cfg.get('point_sampled_loss', True)

    def init_weights(self) -> None:
        for m in self.decoder_input_projs:
            if isinstance(m, nn.Conv2d):
                caffe2_xavier_init(m, bias=0)
        self.pixel_decoder.init_weights()
        for p in self.transformer_decoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_normal_(p)

    # ------------------------------------------------------------------ forward
    def _predict_masks(self, queries: Tensor, mask_features: Tensor,
                       embeds: Optional[List[Tensor]] = None
                       ) -> Tuple[Tensor, Tensor]:
        """Class and mask logits of one prediction set. With ``embeds`` (a
        list), the mask logits are computed without autograd and the mask
        embedding is appended there, for :class:`MaskLogitsOfSets`."""
        queries = self.transformer_decoder.post_norm(queries)  # B×Q×C
        cls_logits = self.cls_embed(queries)  # B×Q×(K+1)
        embed = self.mask_embed(queries)  # B×Q×C
        if embeds is None:
            mask_logits = torch.einsum('bqc,bchw->bqhw', embed, mask_features)
        else:
            b, c, h, w = mask_features.shape
            with torch.no_grad():
                mask_logits = torch.bmm(embed, mask_features.view(b, c, h * w)
                                        ).view(b, -1, h, w)
            embeds.append(embed)
        return cls_logits, mask_logits  # B×Q×H/4×W/4

    def forward_features(self, feats: Sequence[Tensor]
                         ) -> Tuple[List[Tensor], List[Tensor]]:
        """Class and mask logits of all 1 + num_layers prediction sets.

        Args:
            feats: backbone levels, finest first, each (B, C_i, H_i, W_i).

        Returns:
            class logits, each (B, Q, num_classes + 1), and mask logits, each
            (B, Q, H/4, W/4), first from the learnable queries, then after
            every decoder layer.
        """
        b = feats[0].shape[0]
        mask_features, pyramid = self.pixel_decoder(feats)  # pyramid: coarsest first
        # (B, C, h, w) rows for the mask-logit products, whatever layout the
        # convolutions left (channels-last on CPU)
        mask_features = mask_features.contiguous()
        memories, memory_pos, sizes = [], [], []
        for i in range(self.num_transformer_feat_level):
            src = self.decoder_input_projs[i](pyramid[i])
            h, w = src.shape[-2:]
            memories.append(src.flatten(2).transpose(1, 2) +
                            self.level_embed.weight[i])  # B×hw×C
            pos = self.position_embedding(h, w, src.device, src.dtype)
            memory_pos.append(pos.flatten(1).t().unsqueeze(0).expand(b, -1, -1))
            sizes.append((h, w))

        # training on CPU: the mask logits of all sets get one backward
        embeds = [] if _fuse_mask_logits(mask_features) else None
        query_pos = self.query_embed.weight.unsqueeze(0).expand(b, -1, -1)
        queries = self.query_feat.weight.unsqueeze(0).expand(b, -1, -1)
        cls_logits, mask_logits = self._predict_masks(queries, mask_features, embeds)
        all_cls, all_masks = [cls_logits], [mask_logits]
        for i, layer in enumerate(self.transformer_decoder.layers):
            lvl = i % self.num_transformer_feat_level  # round robin 1/32→1/16→1/8
            keep = attention_keep_mask(mask_logits, sizes[lvl])
            queries = layer(queries, query_pos, memories[lvl], memory_pos[lvl], keep)
            cls_logits, mask_logits = self._predict_masks(queries, mask_features,
                                                          embeds)
            all_cls.append(cls_logits)
            all_masks.append(mask_logits)
        if embeds is not None:
            all_masks = list(MaskLogitsOfSets.apply(mask_features, len(embeds),
                                                    *embeds, *all_masks))
        return all_cls, all_masks

    # --------------------------------------------------------------------- loss
    def sample_match_points(self, num_sets: int, num_images: int,
                            device: torch.device) -> Tensor:
        """Uniform matching points, (num_images, num_sets, P, 2). A method so
        tests can replay another implementation's draws."""
        return torch.rand((num_images, num_sets, self.num_points, 2),
                          device=device)

    def sample_loss_points(self, mask_logits: Tensor,
                           set_sizes: List[int]) -> Tensor:
        """Importance-sampled loss points for the matched predictions of all
        sets, (M, P, 2); ``set_sizes`` counts them per set, in order."""
        return uncertain_point_coords(mask_logits[:, None], self.num_points,
                                      self.oversample_ratio,
                                      self.importance_sample_ratio)

    def loss_by_feat(self, all_cls: List[Tensor], all_masks: List[Tensor],
                     targets: Targets) -> Dict[str, Tensor]:
        """Deep-supervised losses of every prediction set.

        Args:
            all_cls: S × (B, Q, K+1); all_masks: S × (B, Q, h, w).
            targets: per image (labels (G,), masks (G, H, W) bool), masks at
                the padded input size.

        Returns:
            ``loss_cls``, ``loss_mask``, ``loss_dice`` for the last set and
            ``d{i}.loss_*`` for the earlier ones.
        """
        num_sets = len(all_cls)
        b, q = all_cls[0].shape[:2]
        cls = torch.stack(all_cls)  # S×B×Q×(K+1)
        device = cls.device

        # Hungarian matching of every set of an image in one batched cost
        match_points = self.sample_match_points(num_sets, b, device)
        labels = torch.full((num_sets, b, q), self.num_classes, dtype=torch.long,
                            device=device)
        matched = []  # per image: set, query and gt indices of the matches
        # costs of a few sets at once, so their S×Q×P temporaries stay small
        step = max(1, CHUNK_ELEMENTS // (q * self.num_points))
        for i, (gt_labels, gt_masks) in enumerate(targets):
            pairs = []
            for first in range(0, num_sets, step):
                sets = range(first, min(num_sets, first + step))
                point_logits = None  # each set at its own points: s×Q×P
                if gt_labels.numel():
                    with torch.no_grad():
                        point_logits = torch.cat([
                            point_sample(all_masks[s][i:i + 1],
                                         match_points[i, s:s + 1]) for s in sets])
                pairs += self.assigner.assign(
                    cls[sets.start:sets.stop, i].detach(), None, gt_labels,
                    gt_masks, match_points[i, sets.start:sets.stop],
                    point_logits=point_logits)
            s_idx = torch.cat([torch.full_like(r, s) for s, (r, _) in enumerate(pairs)])
            q_idx = torch.cat([r for r, _ in pairs])
            g_idx = torch.cat([c for _, c in pairs])
            labels[s_idx, i, q_idx] = gt_labels[g_idx]
            matched.append((s_idx, q_idx, g_idx))

        # classification: all sets at once
        ce = F.cross_entropy(cls.flatten(0, 2).float(), labels.flatten(),
                             weight=self.class_weight, reduction='none')
        loss_cls = ce.view(num_sets, -1).sum(1) / \
            self.class_weight[labels].view(num_sets, -1).sum(1)

        # masks are normalised by the matched targets per image (at least
        # one), averaged over processes
        num_masks = sum(max(m[0].numel() // num_sets, 1) for m in matched)
        num_masks = torch.tensor(float(num_masks), device=device)
        if get_world_size() > 1:
            all_reduce(num_masks, op='mean')
        num_masks = max(num_masks.item(), 1.0)

        loss_mask, loss_dice = self._mask_losses(all_masks, targets, matched,
                                                 num_masks)
        w = self.loss_weights
        losses = {}
        for s in range(num_sets):
            prefix = '' if s == num_sets - 1 else f'd{s}.'
            losses[f'{prefix}loss_cls'] = w['cls'] * loss_cls[s]
            losses[f'{prefix}loss_mask'] = w['mask'] * loss_mask[s]
            losses[f'{prefix}loss_dice'] = w['dice'] * loss_dice[s]
        return losses

    def _mask_losses(self, all_masks: List[Tensor], targets: Targets,
                     matched: list, num_masks: float) -> Tuple[Tensor, Tensor]:
        """Point-sampled BCE and Dice per set, (S,) each."""
        num_sets, num_images = len(all_masks), len(targets)
        # matched predictions ordered set-major, then image, then query
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

        if not self.point_sampled_loss:
            bce = pred.new_zeros(num_sets)
            dice = pred.new_zeros(num_sets)
            for s in range(num_sets):
                sel = s_all == s
                tgt = torch.cat([targets[i][1][g_all[sel & (img_all == i)]]
                                 for i in range(len(targets))])
                bce[s], dice[s] = full_mask_losses(pred[sel], tgt, num_masks)
            return bce, dice

        with torch.no_grad():
            coords = self.sample_loss_points(pred.detach(), set_sizes)  # M×P×2
            point_tgt = torch.empty(coords.shape[:2], device=coords.device,
                                    dtype=pred.dtype)
            for i, (_, gt_masks) in enumerate(targets):
                sel = (img_all == i).nonzero().squeeze(1)
                if sel.numel():
                    point_tgt[sel] = _sample_targets(gt_masks, g_all[sel],
                                                     coords[sel]).to(pred.dtype)
        point_pred = point_sample(pred[:, None], coords)[:, 0]  # M×P

        per_mask_bce = F.binary_cross_entropy_with_logits(
            point_pred, point_tgt, reduction='none').mean(-1)
        probs = point_pred.sigmoid()
        per_mask_dice = 1 - (2 * (probs * point_tgt).sum(-1) + 1) / \
            (probs.sum(-1) + point_tgt.sum(-1) + 1)
        bce = per_mask_bce.new_zeros(num_sets).index_add(0, s_all, per_mask_bce)
        dice = per_mask_dice.new_zeros(num_sets).index_add(0, s_all, per_mask_dice)
        return bce / num_masks, dice / num_masks


def _fuse_mask_logits(features: Tensor) -> bool:
    """Whether :class:`MaskLogitsOfSets` serves this forward: on CPU, with
    autograd on and no autocast (elsewhere a plain einsum per set)."""
    if features.device.type != 'cpu' or not torch.is_grad_enabled() or \
            not features.requires_grad:
        return False
    try:
        return not torch.is_autocast_enabled('cpu')
    except TypeError:  # torch < 2.4
        return not torch.is_autocast_cpu_enabled()


class MaskLogitsOfSets(torch.autograd.Function):
    """The mask logits of all S prediction sets,
    ``einsum('bqc,bchw->bqhw', embed_s, features)``, as one autograd node.

    The logits are computed beforehand without autograd (the decoder needs
    each set's before the next layer runs) and pass through unchanged; the
    backward gathers, per image, the rows of every set that received a
    gradient (the losses supervise only matched queries, a few per set) and
    makes the feature gradient one product over all of them, instead of one
    product and one accumulation of a full-size gradient per set.

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


def _sample_targets(gt_masks: Tensor, gt_idx: Tensor, coords: Tensor) -> Tensor:
    """Sample target ``gt_idx[m]`` at ``coords[m]`` for every m, without
    copying full-resolution masks per match: the points of all matches of one
    target are sampled in a single row of one ``grid_sample`` call.

    gt_masks: (G, H, W); gt_idx: (M,); coords: (M, P, 2) → (M, P).
    """
    m, p = coords.shape[:2]
    used, slot_gt = torch.unique(gt_idx, return_inverse=True)
    counts = torch.bincount(slot_gt)
    # position of each match among the matches of its target
    order = torch.argsort(slot_gt, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(slot_gt)
    rank[order] = torch.arange(m, device=gt_idx.device) - starts[slot_gt[order]]
    width = int(counts.max())
    grid = coords.new_zeros(used.numel(), width, p, 2)
    grid[slot_gt, rank] = coords
    src = gt_masks[used].unsqueeze(1).to(coords.dtype)  # U×1×H×W
    sampled = point_sample(src, grid.view(used.numel(), width * p, 2))
    return sampled.view(used.numel(), width, p)[slot_gt, rank]
