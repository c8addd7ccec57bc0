# Cityscapes instance (8 thing classes), as the paper trains it: shortest edge
# 512..2048 (max 4096), 512x1024 crops; test at shortest edge 1024.
# Data: the COCO-style files MMDetection's tools/dataset_converters/cityscapes.py
# writes (annotations/instancesonly_filtered_gtFine_{train,val}.json, category
# ids 24..33). Assumption: mask AP by pycocotools on these files; the paper's
# numbers are cityscapesscripts' AP, which treats small objects and the
# "group" regions differently.
backend_args = None
data_root = 'data/cityscapes/'
crop_size = (512, 1024)
metainfo = dict(classes=('person', 'rider', 'car', 'truck', 'bus', 'train',
                         'motorcycle', 'bicycle'))

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True,
         backend_args=backend_args),
    dict(type='RandomChoiceResize',
         scales=[(4096, int(1024 * x * 0.1)) for x in range(5, 21)],
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, crop_type='absolute',
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackDetInputs'),
    dict(type='m2f_mm.BuildMaskTargets', min_area=1),  # head's counts
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(2048, 1024), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True,
         backend_args=backend_args),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor')),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='m2f_mm.CocoDataset',
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instancesonly_filtered_gtFine_train.json',
        data_prefix=dict(img='leftImg8bit/train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=1),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='m2f_mm.CocoDataset',
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instancesonly_filtered_gtFine_val.json',
        data_prefix=dict(img='leftImg8bit/val/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

# hotcoco-backed, MMDet's numbers (README "Evaluation"); the slow form is
# m2f_mm.CocoMetric (MMDet's with labels mapped
# through category_ids; MMDet's own would take the file's class order)
val_evaluator = dict(
    type='m2f_mm.FastCocoMetric',
    ann_file=data_root + 'annotations/instancesonly_filtered_gtFine_val.json',
    metric=['segm'], backend_args=backend_args)
test_evaluator = val_evaluator
