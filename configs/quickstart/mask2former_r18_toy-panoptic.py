# Quickstart: a small Mask2Former trained from scratch on the generated
# "toy shapes" dataset (tools/make_toy_dataset.py) on CPU in minutes. One
# model gives panoptic, instance and semantic results, evaluated with
# CocoPanopticMetric (PQ), CocoMetric (mask AP) and IoUMetric (mIoU).
_base_ = '../_base_/default_runtime.py'
custom_imports = dict(imports=['m2f_mm'], allow_failed_imports=False)

data_root = 'data/toy/'
thing_classes = ('circle', 'square', 'triangle')
stuff_classes = ('sky', 'grass', 'water')
metainfo = dict(
    classes=thing_classes + stuff_classes,
    thing_classes=thing_classes,
    stuff_classes=stuff_classes,
    palette=[(220, 20, 60), (255, 165, 0), (148, 0, 211), (135, 190, 235),
             (70, 150, 60), (30, 70, 160)])
num_things_classes = 3
num_stuff_classes = 3
image_size = (128, 128)
num_points = 1024  # the 1/4-scale masks have 32x32 = 1024 pixels

model = dict(
    type='m2f_mm.Mask2Former',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        pad_mask=True,
        mask_pad_value=0,
        pad_seg=True,
        seg_pad_value=255),
    backbone=dict(
        type='ResNet',
        depth=18,  # full width: the half-width one learned the stuff, not the shapes
        base_channels=64,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=None),
    panoptic_head=dict(
        type='m2f_mm.Mask2FormerHead',
        in_channels=[64, 128, 256, 512],
        strides=[4, 8, 16, 32],
        feat_channels=128,
        mask_channels=128,
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        num_queries=20,
        pixel_decoder=dict(
            type='m2f_mm.MSDeformAttnPixelDecoder',
            num_layers=2,
            num_heads=8,
            num_points=4,
            ffn_dims=512,
            norm_cfg=dict(type='GN', num_groups=32)),
        transformer_decoder=dict(num_layers=6, num_heads=8, ffn_dims=512),
        # the class loss weighs 5 (the paper: 2; matching costs unchanged):
        # trained from scratch for minutes, the model segments the things
        # long before it names their shapes, and the heavier class loss
        # (with lr 1e-3) names them sooner (README, "What was tried")
        loss_weights=dict(cls=5.0, mask=5.0, dice=5.0)),
    # the fusion head, BuildMaskTargets and the dataset's metainfo follow
    # the head's class counts
    panoptic_fusion_head=dict(type='m2f_mm.Mask2FormerFusionHead'),
    train_cfg=dict(num_points=num_points, oversample_ratio=3.0,
                   importance_sample_ratio=0.75),
    test_cfg=dict(
        panoptic_on=True,
        instance_on=True,
        semantic_on=True,
        max_per_image=20,
        # the paper's 0.8 drops many correct things of a model trained for
        # minutes (its class scores are less peaked); 0.5 keeps them
        object_mask_thr=0.5,
        iou_thr=0.8,
        filter_low_score=True))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='m2f_mm.LoadPanopticAnnotations', with_bbox=True, with_mask=True,
         with_seg=True),
    dict(type='RandomFlip', prob=0.5),
    # mild scale jitter: shrinking by half would leave the smallest things
    # too few pixels to tell a square from a circle
    dict(type='RandomResize', scale=image_size, ratio_range=(0.8, 1.25),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=image_size, crop_type='absolute',
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='PackDetInputs'),
    dict(type='m2f_mm.BuildMaskTargets'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='m2f_mm.LoadPanopticAnnotations', with_bbox=True, with_mask=True,
         with_seg=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='m2f_mm.CocoPanopticDataset',
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/panoptic_train.json',
        data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='m2f_mm.CocoPanopticDataset',
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/panoptic_val.json',
        data_prefix=dict(img='val/', seg='annotations/panoptic_val/'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# PQ and AP by hotcoco from the predictions in memory (MMDet's numbers;
# README "Evaluation"). MMDet's own: type='CocoPanopticMetric' and
# type='CocoMetric' in place of the two m2f_mm types.
val_evaluator = [
    dict(type='m2f_mm.FastCocoPanopticMetric',
         ann_file=data_root + 'annotations/panoptic_val.json',
         seg_prefix=data_root + 'annotations/panoptic_val/'),
    dict(type='m2f_mm.FastCocoMetric',
         ann_file=data_root + 'annotations/instances_val.json',
         metric=['segm']),
    dict(type='m2f_mm.SemSegIoUMetric', iou_metrics=['mIoU']),
]
# tools/test.py also reports every class's PQ, mask AP and IoU
test_evaluator = [
    dict(val_evaluator[0], classwise=True),
    dict(val_evaluator[1], classwise=True),
    dict(val_evaluator[2], classwise=True),
]

# tools/quickstart.py trains with 2 processes (DDP over gloo, one thread
# each): 8 images per iteration
max_iters = 630
val_interval = 210  # three points on the validation curve
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='m2f_mm.GroupedOptimWrapperConstructor',  # few groups, not one per tensor
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, eps=1e-8,
                   betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        custom_keys={
            'query_embed': dict(lr_mult=1.0, decay_mult=0.0),
            'query_feat': dict(lr_mult=1.0, decay_mult=0.0),
            'level_embed': dict(lr_mult=1.0, decay_mult=0.0),
        },
        norm_decay_mult=0.0),
    clip_grad=dict(max_norm=0.01, norm_type=2))
# resuming a checkpoint saved with one parameter group per parameter: the
# param schedulers' per-group values follow the merged groups; the losses
# reach the logs in one copy from the GPU, not one synchronisation each
custom_hooks = [dict(type='m2f_mm.MergedGroupsResumeHook'),
                dict(type='m2f_mm.LogVarsToHostHook')]
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', begin=50, end=max_iters, by_epoch=False,
         T_max=max_iters - 50, eta_min=1e-6),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

default_hooks = dict(
    # validation metrics logged at their iteration (tools/plot_curves.py)
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters,
                    save_last=True, max_keep_ckpts=1))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
# same command, same metrics: seeded, deterministic kernels, one loader worker
randomness = dict(seed=0, deterministic=True)
