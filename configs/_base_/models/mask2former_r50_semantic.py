# Mask2Former with a ResNet-50 backbone for semantic segmentation in
# MMSegmentation: mmseg's EncoderDecoder with our head as its decode_head
# (paper defaults: 100 queries, 9 decoder layers, K = 12544 points).
# The top-level configs set num_classes and the crop size.
custom_imports = dict(imports=['m2f_mm'], allow_failed_imports=False)

num_classes = 150
num_points = 12544

data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(512, 512),
    test_cfg=dict(size_divisor=32))

model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ResNet',
        depth=50,
        deep_stem=False,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        # frozen BN as in the paper (MMSeg's config leaves the running
        # statistics updating: SyncBN, requires_grad=False, norm_eval=False)
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    decode_head=dict(
        type='m2f_mm.Mask2FormerHead',
        in_channels=[256, 512, 1024, 2048],
        strides=[4, 8, 16, 32],
        feat_channels=256,
        mask_channels=256,
        num_classes=num_classes,
        num_queries=100,
        num_transformer_feat_level=3,
        align_corners=False,
        ignore_index=255,
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
        no_object_weight=0.1,
        train_cfg=dict(
            num_points=num_points,
            oversample_ratio=3.0,
            importance_sample_ratio=0.75,
            assigner=dict(
                type='m2f_mm.PointHungarianAssigner',
                cls_weight=2.0,
                mask_weight=5.0,
                dice_weight=5.0))),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
