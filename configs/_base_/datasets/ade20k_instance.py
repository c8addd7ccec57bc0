# ADE20K instance (100 thing classes), as the paper trains it: shortest edge
# 320..1280 (max 2560), 640x640 crops; test at shortest edge 640.
# Data: the original's datasets/prepare_ade20k_ins_seg.py
# (ADEChallengeData2016/ade20k_instance_{train,val}.json), whose category ids
# are the panoptic ones (7 bed, 8 window, ...). Labels follow category_ids
# (the things of m2f_mm/datasets/categories.py, in the original's order), so
# the file's own category names need not match these.
backend_args = None
data_root = 'data/ade/ADEChallengeData2016/'
crop_size = (640, 640)
metainfo = dict(
    classes=('bed', 'window ', 'cabinet', 'person', 'door', 'table', 'curtain', 'chair',
     'car', 'painting, picture', 'sofa', 'shelf', 'mirror', 'armchair', 'seat',
     'fence', 'desk', 'wardrobe, closet, press', 'lamp', 'tub', 'rail',
     'cushion', 'box', 'column, pillar', 'signboard, sign',
     'chest of drawers, chest, bureau, dresser', 'counter', 'sink', 'fireplace',
     'refrigerator, icebox', 'stairs', 'case, display case, showcase, vitrine',
     'pool table, billiard table, snooker table', 'pillow',
     'screen door, screen', 'bookcase', 'coffee table',
     'toilet, can, commode, crapper, pot, potty, stool, throne', 'flower',
     'book', 'bench', 'countertop', 'stove', 'palm, palm tree',
     'kitchen island', 'computer', 'swivel chair', 'boat', 'arcade machine',
     'bus', 'towel', 'light', 'truck', 'chandelier',
     'awning, sunshade, sunblind', 'street lamp', 'booth', 'tv', 'plane',
     'clothes', 'pole', 'bannister, banister, balustrade, balusters, handrail',
     'ottoman, pouf, pouffe, puff, hassock', 'bottle', 'van', 'ship',
     'fountain', 'washer, automatic washer, washing machine', 'plaything, toy',
     'stool', 'barrel, cask', 'basket, handbasket', 'bag',
     'minibike, motorbike', 'oven', 'ball', 'food, solid food', 'step, stair',
     'trade name', 'microwave', 'pot', 'animal', 'bicycle', 'dishwasher',
     'screen', 'sculpture', 'hood, exhaust hood', 'sconce', 'vase',
     'traffic light', 'tray', 'trash can', 'fan', 'plate', 'monitor',
     'bulletin board', 'radiator', 'glass, drinking glass', 'clock', 'flag'),
    category_ids=(7, 8, 10, 12, 14, 15, 18, 19, 20, 22, 23, 24, 27, 30, 31, 32, 33, 35, 36,
     37, 38, 39, 41, 42, 43, 44, 45, 47, 49, 50, 53, 55, 56, 57, 58, 62, 64, 65,
     66, 67, 69, 70, 71, 72, 73, 74, 75, 76, 78, 80, 81, 82, 83, 85, 86, 87, 88,
     89, 90, 92, 93, 95, 97, 98, 102, 103, 104, 107, 108, 110, 111, 112, 115,
     116, 118, 119, 120, 121, 123, 124, 125, 126, 127, 129, 130, 132, 133, 134,
     135, 136, 137, 138, 139, 142, 143, 144, 146, 147, 148, 149))

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True,
         backend_args=backend_args),
    dict(type='RandomChoiceResize',
         scales=[(2560, int(640 * x * 0.1)) for x in range(5, 21)],
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
    dict(type='Resize', scale=(2560, 640), keep_ratio=True),
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
        ann_file='ade20k_instance_train.json',
        data_prefix=dict(img='images/training/'),
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
        ann_file='ade20k_instance_val.json',
        data_prefix=dict(img='images/validation/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

# hotcoco-backed, MMDet's numbers (README "Evaluation"); the slow form is
# m2f_mm.CocoMetric (MMDet's with labels mapped
# through category_ids; MMDet's own would take the file's class order)
val_evaluator = dict(
    type='m2f_mm.FastCocoMetric',
    ann_file=data_root + 'ade20k_instance_val.json',
    metric=['segm'], backend_args=backend_args)
test_evaluator = val_evaluator
