# Quickstart, instance segmentation: the same small model on the toy data's
# COCO instance annotations (things only), evaluated with CocoMetric (segm).
_base_ = './mask2former_r18_toy-panoptic.py'

data_root = 'data/toy/'
num_things_classes = 3
metainfo = dict(classes=('circle', 'square', 'triangle'),
                palette=[(220, 20, 60), (255, 165, 0), (148, 0, 211)])
model = dict(
    panoptic_head=dict(num_things_classes=num_things_classes, num_stuff_classes=0),
    test_cfg=dict(panoptic_on=False, semantic_on=False, instance_on=True))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale={{_base_.image_size}}, ratio_range=(0.8, 1.25),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size={{_base_.image_size}}, crop_type='absolute',
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='PackDetInputs'),
    dict(type='m2f_mm.BuildMaskTargets'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor')),
]
train_dataloader = dict(dataset=dict(
    _delete_=True,
    type='m2f_mm.CocoDataset',
    data_root=data_root,
    metainfo=metainfo,
    ann_file='annotations/instances_train.json',
    data_prefix=dict(img='train/'),
    filter_cfg=dict(filter_empty_gt=False),
    pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(
    _delete_=True,
    type='m2f_mm.CocoDataset',
    data_root=data_root,
    metainfo=metainfo,
    ann_file='annotations/instances_val.json',
    data_prefix=dict(img='val/'),
    test_mode=True,
    pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    _delete_=True,
    type='m2f_mm.FastCocoMetric',  # MMDet's own: type='CocoMetric'
    ann_file=data_root + 'annotations/instances_val.json',
    metric=['segm'])
test_evaluator = val_evaluator
