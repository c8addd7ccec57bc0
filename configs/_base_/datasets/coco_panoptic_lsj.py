# COCO panoptic with large-scale jitter (scale 0.1-2.0, 1024x1024 crop).
_base_ = 'mmdet::_base_/datasets/coco_panoptic.py'

image_size = (1024, 1024)
data_root = 'data/coco/'
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=backend_args),
    dict(type='LoadPanopticAnnotations', with_bbox=True, with_mask=True,
         with_seg=True, backend_args=backend_args),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=image_size, crop_type='absolute',
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='PackDetInputs')
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))

val_evaluator = [
    dict(type='CocoPanopticMetric',
         ann_file=data_root + 'annotations/panoptic_val2017.json',
         seg_prefix=data_root + 'annotations/panoptic_val2017/',
         backend_args=backend_args),
    dict(type='CocoMetric',
         ann_file=data_root + 'annotations/instances_val2017.json',
         metric=['bbox', 'segm'], backend_args=backend_args)
]
test_evaluator = val_evaluator
