# Cityscapes panoptic (19 classes: 8 things, 11 stuff), as the paper trains it:
# shortest edge 512..2048 (max 4096), 512x1024 crops; test at shortest edge 1024.
# Data: cityscapesscripts' createPanopticImgs (README, 'Datasets'):
# gtFine/cityscapes_panoptic_{train,val}.json and PNGs beside leftImg8bit/.
# Labels are things first (our head's and MMDetection's convention); the
# metainfo's category_ids give each label's dataset category id, and
# m2f_mm.CocoPanopticDataset / m2f_mm.CocoPanopticMetric map through them, so
# predictions and PQ things/stuff are in the dataset's own ids. Written from
# m2f_mm/datasets/categories.py (tests/test_zoo_configs.py checks they agree).
dataset_type = 'm2f_mm.CityscapesPanopticDataset'
data_root = 'data/cityscapes/'
backend_args = None
crop_size = (512, 1024)

metainfo = dict(
    classes=('person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle',
     'road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
     'traffic sign', 'vegetation', 'terrain', 'sky'),
    thing_classes=('person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle'),
    stuff_classes=('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
     'traffic sign', 'vegetation', 'terrain', 'sky'),
    category_ids=(24, 25, 26, 27, 28, 31, 32, 33, 7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23),
)

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='m2f_mm.LoadPanopticAnnotations', with_bbox=True, with_mask=True,
         with_seg=True, backend_args=backend_args),
    # shortest edge 1024 x 0.5..2.0 (step 0.1), longest at most 4096
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
    dict(type='m2f_mm.LoadPanopticAnnotations', backend_args=backend_args),
    # seg_map_path: the metric finds the ground-truth PNG by it
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'seg_map_path', 'ori_shape',
                    'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='gtFine/cityscapes_panoptic_train.json',
        data_prefix=dict(img='leftImg8bit/train/', seg='gtFine/cityscapes_panoptic_train/'),
        filter_cfg=dict(filter_empty_gt=True),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='gtFine/cityscapes_panoptic_val.json',
        data_prefix=dict(img='leftImg8bit/val/', seg='gtFine/cityscapes_panoptic_val/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

# hotcoco-backed, MMDet's numbers (README "Evaluation"); the slow form is
# m2f_mm.CocoPanopticMetric (MMDet's with labels mapped
# through category_ids; MMDet's own would take the file's class order)
val_evaluator = dict(
    type='m2f_mm.FastCocoPanopticMetric',
    ann_file=data_root + 'gtFine/cityscapes_panoptic_val.json',
    seg_prefix=data_root + 'gtFine/cityscapes_panoptic_val/',
    backend_args=backend_args)
test_evaluator = val_evaluator
