# Mask2Former with a ResNet-50 backbone, paper defaults (COCO panoptic:
# 80 things + 53 stuff, 100 queries, 9 decoder layers, K = 12544 points).
custom_imports = dict(imports=['m2f_mm'], allow_failed_imports=False)

num_things_classes = 80
num_stuff_classes = 53
num_classes = num_things_classes + num_stuff_classes
num_points = 12544

data_preprocessor = dict(
    type='DetDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_size_divisor=32,
    pad_mask=True,
    mask_pad_value=0,
    pad_seg=True,
    seg_pad_value=255,
    batch_augments=[
        dict(type='BatchFixedSizePad', size=(1024, 1024), img_pad_value=0,
             pad_mask=True, mask_pad_value=0, pad_seg=True, seg_pad_value=255)
    ])

model = dict(
    type='m2f_mm.Mask2Former',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    panoptic_head=dict(
        type='m2f_mm.Mask2FormerHead',
        in_channels=[256, 512, 1024, 2048],
        strides=[4, 8, 16, 32],
        feat_channels=256,
        mask_channels=256,
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        num_queries=100,
        num_transformer_feat_level=3,
        pixel_decoder=dict(
            type='m2f_mm.MSDeformAttnPixelDecoder',
            num_encoder_levels=3,
            num_layers=6,
            num_heads=8,
            num_points=4,
            ffn_dims=1024,
            norm_cfg=dict(type='GN', num_groups=32),
            act_cfg=dict(type='ReLU'),
            # True: recompute the encoder layers in backward (less memory,
            # one more encoder forward per step)
            with_cp=False),
        transformer_decoder=dict(num_layers=9, num_heads=8, ffn_dims=2048),
        loss_weights=dict(cls=2.0, mask=5.0, dice=5.0),
        no_object_weight=0.1),
    # the fusion head, BuildMaskTargets and the dataset's metainfo follow
    # the head's class counts
    panoptic_fusion_head=dict(type='m2f_mm.Mask2FormerFusionHead'),
    train_cfg=dict(
        num_points=num_points,
        oversample_ratio=3.0,
        importance_sample_ratio=0.75,
        assigner=dict(
            type='m2f_mm.PointHungarianAssigner',
            cls_weight=2.0,
            mask_weight=5.0,
            dice_weight=5.0)),
    test_cfg=dict(
        panoptic_on=True,
        semantic_on=False,
        instance_on=True,
        max_per_image=100,
        object_mask_thr=0.8,
        iou_thr=0.8,
        # drop pixels whose own mask probability is < 0.5 (as the paper's code)
        filter_low_score=True),
    init_cfg=None)
