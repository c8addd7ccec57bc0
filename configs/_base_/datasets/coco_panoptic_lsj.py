# COCO panoptic (80 things + 53 stuff) with the paper's large-scale jitter.
dataset_type = 'm2f_mm.CocoPanopticDataset'
data_root = 'data/coco/'
backend_args = None
image_size = (1024, 1024)

# ---- large-scale jitter (LSJ) -------------------------------------------------
# Resize to 0.1-2.0 x image_size keeping the aspect ratio, then take an
# image_size crop (smaller results are padded to image_size by the data
# preprocessor's BatchFixedSizePad). MMDet's RandomCrop drops things whose box
# left the crop but keeps those whose box overlaps it while their pixels do
# not; BuildMaskTargets (after PackDetInputs) builds one mask per thing and per
# stuff class in the dataloader workers and drops segments smaller than
# min_area pixels (default 1: the ones the crop emptied).
lsj_transforms = [
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=image_size, crop_type='absolute',
         recompute_bbox=True, allow_negative_crop=True),
]
mask_targets = dict(type='m2f_mm.BuildMaskTargets', min_area=1)  # head's counts

train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=backend_args),
    dict(type='m2f_mm.LoadPanopticAnnotations', with_bbox=True, with_mask=True,
         with_seg=True, backend_args=backend_args),
    *lsj_transforms,
    dict(type='PackDetInputs'),
    mask_targets,
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='m2f_mm.LoadPanopticAnnotations', backend_args=backend_args),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor')),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/panoptic_train2017.json',
        data_prefix=dict(img='train2017/', seg='annotations/panoptic_train2017/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
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
        ann_file='annotations/panoptic_val2017.json',
        data_prefix=dict(img='val2017/', seg='annotations/panoptic_val2017/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

# PQ and AP by hotcoco from the predictions in memory (MMDet's numbers, many
# times faster; README "Evaluation"). MMDet's own: type='CocoPanopticMetric'
# and type='CocoMetric' in place of the two m2f_mm types.
val_evaluator = [
    dict(type='m2f_mm.FastCocoPanopticMetric',
         ann_file=data_root + 'annotations/panoptic_val2017.json',
         seg_prefix=data_root + 'annotations/panoptic_val2017/',
         backend_args=backend_args),
    dict(type='m2f_mm.FastCocoMetric',
         ann_file=data_root + 'annotations/instances_val2017.json',
         metric=['bbox', 'segm'], backend_args=backend_args),
]
test_evaluator = val_evaluator
