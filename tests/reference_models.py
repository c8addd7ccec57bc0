"""Small MMDet 3.3 / m2f_mm Mask2Former pairs built from equivalent configs,
for parity tests (CPU, small shapes)."""
import copy

import torch
from mmengine.config import ConfigDict

BACKBONE = dict(type='mmdet.ResNet', depth=18, num_stages=4, out_indices=(0, 1, 2, 3),
                frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=False),
                norm_eval=True, style='pytorch', init_cfg=None)
IN_CHANNELS = [64, 128, 256, 512]
PREPROCESSOR = dict(type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                    std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32,
                    pad_mask=True, mask_pad_value=0, pad_seg=True, seg_pad_value=255)


def test_cfg(panoptic=True, instance=True, semantic=False):
    return dict(panoptic_on=panoptic, semantic_on=semantic, instance_on=instance,
                max_per_image=20, iou_thr=0.8, filter_low_score=True,
                object_mask_thr=0.8)


def mmdet_cfg(num_things=3, num_stuff=2, num_queries=10, feat=64, num_points=128,
              num_layers=9, panoptic=True):
    num_classes = num_things + num_stuff
    mha = dict(embed_dims=feat, num_heads=8, dropout=0.0, batch_first=True)
    ffn = lambda d: dict(embed_dims=feat, feedforward_channels=d, num_fcs=2,  # noqa: E731
                         ffn_drop=0.0, act_cfg=dict(type='ReLU', inplace=True))
    head = dict(
        type='mmdet.Mask2FormerHead', in_channels=IN_CHANNELS, strides=[4, 8, 16, 32],
        feat_channels=feat, out_channels=feat, num_things_classes=num_things,
        num_stuff_classes=num_stuff, num_queries=num_queries,
        num_transformer_feat_level=3,
        pixel_decoder=dict(
            type='mmdet.MSDeformAttnPixelDecoder', num_outs=3,
            norm_cfg=dict(type='GN', num_groups=32), act_cfg=dict(type='ReLU'),
            encoder=dict(num_layers=6, layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=feat, num_heads=8, num_levels=3,
                                   num_points=4, dropout=0.0, batch_first=True),
                ffn_cfg=ffn(2 * feat))),
            positional_encoding=dict(num_feats=feat // 2, normalize=True)),
        enforce_decoder_input_project=False,
        positional_encoding=dict(num_feats=feat // 2, normalize=True),
        transformer_decoder=dict(
            return_intermediate=True, num_layers=num_layers,
            layer_cfg=dict(self_attn_cfg=mha, cross_attn_cfg=mha, ffn_cfg=ffn(4 * feat)),
            init_cfg=None),
        loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0,
                      reduction='mean', class_weight=[1.0] * num_classes + [0.1]),
        loss_mask=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True,
                       reduction='mean', loss_weight=5.0),
        loss_dice=dict(type='mmdet.DiceLoss', use_sigmoid=True, activate=True,
                       reduction='mean', naive_dice=True, eps=1.0, loss_weight=5.0))
    return ConfigDict(
        type='mmdet.Mask2Former', data_preprocessor=PREPROCESSOR, backbone=BACKBONE,
        panoptic_head=head,
        panoptic_fusion_head=dict(type='mmdet.MaskFormerFusionHead',
                                  num_things_classes=num_things,
                                  num_stuff_classes=num_stuff, loss_panoptic=None,
                                  init_cfg=None),
        train_cfg=dict(
            num_points=num_points, oversample_ratio=3.0, importance_sample_ratio=0.75,
            assigner=dict(type='mmdet.HungarianAssigner', match_costs=[
                dict(type='mmdet.ClassificationCost', weight=2.0),
                dict(type='mmdet.CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
                dict(type='mmdet.DiceCost', weight=5.0, pred_act=True, eps=1.0)]),
            sampler=dict(type='mmdet.MaskPseudoSampler')),
        test_cfg=test_cfg(instance=True, panoptic=panoptic))


def ours_cfg(num_things=3, num_stuff=2, num_queries=10, feat=64, num_points=128,
             num_layers=9, panoptic=True):
    head = dict(
        type='m2f_mm.Mask2FormerHead', in_channels=IN_CHANNELS, strides=[4, 8, 16, 32],
        feat_channels=feat, mask_channels=feat, num_things_classes=num_things,
        num_stuff_classes=num_stuff, num_queries=num_queries,
        pixel_decoder=dict(type='MSDeformAttnPixelDecoder', num_heads=8,
                           ffn_dims=2 * feat),
        transformer_decoder=dict(num_layers=num_layers, num_heads=8, ffn_dims=4 * feat))
    return ConfigDict(
        type='m2f_mm.Mask2Former', data_preprocessor=PREPROCESSOR, backbone=BACKBONE,
        panoptic_head=head,
        panoptic_fusion_head=dict(type='m2f_mm.Mask2FormerFusionHead',
                                  num_things_classes=num_things,
                                  num_stuff_classes=num_stuff),
        train_cfg=dict(num_points=num_points, oversample_ratio=3.0,
                       importance_sample_ratio=0.75,
                       assigner=dict(type='PointHungarianAssigner')),
        test_cfg=test_cfg(instance=True, panoptic=panoptic))


def build_pair(seed=0, **kwargs):
    """MMDet's model and ours with MMDet's weights converted into ours."""
    from mmdet.registry import MODELS
    from m2f_mm.converters import convert_mmdet_state_dict
    torch.manual_seed(seed)
    ref = MODELS.build(mmdet_cfg(**kwargs))
    ref.init_weights()
    ours = MODELS.build(ours_cfg(**kwargs))
    missing, unexpected = ours.load_state_dict(
        convert_mmdet_state_dict(ref.state_dict()), strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    return ref.eval(), ours.eval()
