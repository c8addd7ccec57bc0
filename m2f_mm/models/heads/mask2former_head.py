"""Mask2Former head: pixel decoder → masked-attention Transformer decoder,
trained by the point-sampled Hungarian criterion.

One class serves two hosts: ``mmdet.Mask2Former`` (as ``panoptic_head``) and
``mmseg.EncoderDecoder`` (as ``decode_head``), with one state-dict layout;
how targets come in and predictions go out for each is in ``hosts.py``.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor

from m2f_mm.converters.mmdet import convert_head_key
from m2f_mm.registry import MODELS, build
from m2f_mm.utils.errors import describe_image
from ..decoders.mask_predictions import MaskEmbeddings
from ..decoders.masked_attention_decoder import MaskedAttentionDecoder
from ..losses.criterion import Mask2FormerCriterion
from ..utils.targets import resolve_class_counts
from . import hosts

# MMSeg passes train_cfg / test_cfg as a third positional argument, MMDet none
_NOT_PASSED = object()


@MODELS.register_module()
class Mask2FormerHead(BaseModule):
    """Mask2Former head.

    Args:
        in_channels: backbone channels per level, finest first.
        strides: their strides.
        num_things_classes, num_stuff_classes: panoptic / instance classes.
        num_classes: alone, semantic segmentation (every class stuff); with
            the others, it must be their sum. Default: COCO's 80 + 53.
        feat_channels: pixel decoder and query channels (C = 256).
        mask_channels: width of the per-pixel and mask embeddings.
        num_queries: N (100; 200 for Swin-L COCO panoptic).
        num_transformer_feat_level: pyramid levels fed round robin (3).
        pixel_decoder: config of the pixel decoder (``in_channels``,
            ``strides``, ``feat_channels``, ``out_channels`` are filled in).
        transformer_decoder: ``dict(num_layers=9, num_heads=8, ffn_dims=2048)``.
        enforce_decoder_input_project: 1×1 projections even when channels
            already match.
        loss_weights: ``dict(cls=2.0, mask=5.0, dice=5.0)``.
        no_object_weight: class weight of "no object" (0.1).
        class_weight: all K + 1 class weights; overrides ``no_object_weight``.
        train_cfg: ``assigner`` (``PointHungarianAssigner``), ``num_points``
            (12544), ``oversample_ratio`` (3.0), ``importance_sample_ratio``
            (0.75), ``point_sampled_loss`` (True).
        test_cfg: kept for the hosts.
        ignore_index: void label of semantic maps (255).
        align_corners, threshold: read by MMSeg's EncoderDecoder.
        host: ``'mmdet'`` or ``'mmseg'``; by default told by the call (MMSeg
            passes its train_cfg / test_cfg as a third argument).

    Attributes read by MMSeg: ``num_classes``, ``out_channels`` (= number of
    seg-logit channels, K), ``align_corners``, ``threshold``.

    The class counts are declared here only: the fusion head (in
    ``m2f_mm.Mask2Former``), ``BuildMaskTargets`` and the dataset's metainfo
    (checked by m2f_mm's tools) follow them.
    """

    #: class counts when none are given (COCO panoptic)
    DEFAULT_CLASS_COUNTS = (80, 53)

    def __init__(self,
                 in_channels: Sequence[int] = (256, 512, 1024, 2048),
                 strides: Sequence[int] = (4, 8, 16, 32),
                 num_things_classes: Optional[int] = None,
                 num_stuff_classes: Optional[int] = None,
                 num_classes: Optional[int] = None,
                 feat_channels: int = 256,
                 mask_channels: int = 256,
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
                 host: Optional[str] = None,
                 init_cfg: Optional[Dict] = None,
                 **mmseg_kwargs) -> None:
        super().__init__(init_cfg=init_cfg)
        if 'out_channels' in mmseg_kwargs:
            raise TypeError('Mask2FormerHead: out_channels is the number of '
                            'seg-logit channels (num_classes); give the mask '
                            'embedding width as mask_channels')
        hosts.check_host_kwargs(mmseg_kwargs)
        if host not in (None, *hosts.HOSTS):
            raise ValueError(f'Mask2FormerHead: host must be one of '
                             f'{hosts.HOSTS} or None, got {host!r}')
        self.counts = resolve_class_counts(num_things_classes, num_stuff_classes,
                                           num_classes,
                                           default=self.DEFAULT_CLASS_COUNTS)
        self.num_things_classes, self.num_stuff_classes = self.counts
        self.num_classes = self.out_channels = self.counts.total
        self.num_queries = num_queries
        self.ignore_index = ignore_index
        self.align_corners = align_corners
        # MMSeg's EncoderDecoder thresholds single-channel outputs
        self.threshold = 0.3 if threshold is None and self.num_classes == 1 \
            else threshold
        self.host = host
        self.test_cfg = test_cfg

        self.pixel_decoder = build(
            dict(pixel_decoder, in_channels=list(in_channels), strides=list(strides),
                 feat_channels=feat_channels, out_channels=mask_channels), MODELS)
        self.transformer_decoder = MaskedAttentionDecoder(
            num_classes=self.num_classes, num_queries=num_queries,
            embed_dims=feat_channels, num_levels=num_transformer_feat_level,
            in_channels=feat_channels, mask_channels=mask_channels,
            enforce_input_project=enforce_decoder_input_project,
            **transformer_decoder)

        train_cfg = dict(train_cfg or {})
        if class_weight is None:
            class_weight = [1.0] * self.num_classes + [no_object_weight]
        self.criterion = Mask2FormerCriterion(
            self.num_classes, class_weight, loss_weights,
            assigner=train_cfg.pop('assigner', dict(type='PointHungarianAssigner')),
            **train_cfg)

    def init_weights(self) -> None:
        self.pixel_decoder.init_weights()
        self.transformer_decoder.init_weights()

    def forward(self, x: Sequence[Tensor], batch_data_samples=None,
                embeddings: bool = False
                ) -> Tuple[List[Tensor], Union[List[Tensor], MaskEmbeddings]]:
        """Class logits (B, Q, K+1) and mask logits (B, Q, H/4, W/4) of all
        1 + num_layers prediction sets, from backbone levels ``x`` (finest
        first); with ``embeddings`` the mask predictions as
        :class:`~m2f_mm.models.decoders.MaskEmbeddings`, whose logits are
        made only where asked (training and inference do so)."""
        mask_features, multi_scale_features = self.pixel_decoder(x)
        return self.transformer_decoder(mask_features, multi_scale_features,
                                        embeddings=embeddings)

    def loss(self, x: Sequence[Tensor], batch_data_samples: list,
             train_cfg=_NOT_PASSED) -> Dict[str, Tensor]:
        """Both hosts: a dict of the 3 × (1 + num_layers) loss terms."""
        all_cls, masks = self(x, embeddings=True)
        targets = hosts.targets_from_samples(batch_data_samples, self.counts,
                                             self.ignore_index)
        names = [describe_image(s.metainfo) for s in batch_data_samples]
        return self.criterion(all_cls, masks, targets, names)

    def predict(self, x: Sequence[Tensor], batch_data_samples: list,
                test_cfg=_NOT_PASSED):
        """MMDet: class logits (B, Q, K+1) and mask logits at the padded
        input size (B, Q, H, W), for the fusion head. MMSeg (given image
        metas and its test_cfg): per-class scores (B, K, H, W). Float32
        whatever the autocast around the network."""
        all_cls, all_masks = self(x, embeddings=True)
        # only the last set's full mask logits are made
        cls, masks = all_cls[-1].float(), all_masks.full(-1)
        host = self.host or ('mmdet' if test_cfg is _NOT_PASSED else 'mmseg')
        with torch.autocast(masks.device.type, enabled=False):
            if host == 'mmseg':
                test_cfg = None if test_cfg is _NOT_PASSED else test_cfg
                return hosts.mmseg_seg_logits(cls, masks, batch_data_samples,
                                              test_cfg)
            return hosts.mmdet_predictions(cls, masks, batch_data_samples)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # head weights in MMDet's/MMSeg's layout, or in ours before the
        # decoder owned its queries and prediction heads (m2f_mm 0.1), are
        # renamed on load
        for key in [k for k in state_dict if k.startswith(prefix)]:
            new = prefix + convert_head_key(key[len(prefix):])
            if new != key:
                state_dict[new] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
