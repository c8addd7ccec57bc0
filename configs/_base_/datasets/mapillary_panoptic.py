# Mapillary Vistas v1.2 panoptic (65 classes: 37 things, 28 stuff), as the
# paper trains it: shortest edge 1024..4096 (max 8192), 1024x1024 crops; test at
# shortest edge 2048 (max 2048).
# Data: the dataset as released (README, 'Datasets'): {training,validation}/
# panoptic/panoptic_2018.json with its PNGs, images/*.jpg.
# Labels are things first (our head's and MMDetection's convention); the
# metainfo's category_ids give each label's dataset category id, and
# m2f_mm.CocoPanopticDataset / m2f_mm.CocoPanopticMetric map through them, so
# predictions and PQ things/stuff are in the dataset's own ids. Written from
# m2f_mm/datasets/categories.py (tests/test_zoo_configs.py checks they agree).
dataset_type = 'm2f_mm.CocoPanopticDataset'
data_root = 'data/mapillary_vistas/'
backend_args = None
crop_size = (1024, 1024)

metainfo = dict(
    classes=('Bird', 'Ground Animal', 'Crosswalk - Plain', 'Person', 'Bicyclist',
     'Motorcyclist', 'Other Rider', 'Lane Marking - Crosswalk', 'Banner',
     'Bench', 'Bike Rack', 'Billboard', 'Catch Basin', 'CCTV Camera',
     'Fire Hydrant', 'Junction Box', 'Mailbox', 'Manhole', 'Phone Booth',
     'Street Light', 'Pole', 'Traffic Sign Frame', 'Utility Pole',
     'Traffic Light', 'Traffic Sign (Back)', 'Traffic Sign (Front)',
     'Trash Can', 'Bicycle', 'Boat', 'Bus', 'Car', 'Caravan', 'Motorcycle',
     'Other Vehicle', 'Trailer', 'Truck', 'Wheeled Slow', 'Curb', 'Fence',
     'Guard Rail', 'Barrier', 'Wall', 'Bike Lane', 'Curb Cut', 'Parking',
     'Pedestrian Area', 'Rail Track', 'Road', 'Service Lane', 'Sidewalk',
     'Bridge', 'Building', 'Tunnel', 'Lane Marking - General', 'Mountain',
     'Sand', 'Sky', 'Snow', 'Terrain', 'Vegetation', 'Water', 'Pothole',
     'On Rails', 'Car Mount', 'Ego Vehicle'),
    thing_classes=('Bird', 'Ground Animal', 'Crosswalk - Plain', 'Person', 'Bicyclist',
     'Motorcyclist', 'Other Rider', 'Lane Marking - Crosswalk', 'Banner',
     'Bench', 'Bike Rack', 'Billboard', 'Catch Basin', 'CCTV Camera',
     'Fire Hydrant', 'Junction Box', 'Mailbox', 'Manhole', 'Phone Booth',
     'Street Light', 'Pole', 'Traffic Sign Frame', 'Utility Pole',
     'Traffic Light', 'Traffic Sign (Back)', 'Traffic Sign (Front)',
     'Trash Can', 'Bicycle', 'Boat', 'Bus', 'Car', 'Caravan', 'Motorcycle',
     'Other Vehicle', 'Trailer', 'Truck', 'Wheeled Slow'),
    stuff_classes=('Curb', 'Fence', 'Guard Rail', 'Barrier', 'Wall', 'Bike Lane', 'Curb Cut',
     'Parking', 'Pedestrian Area', 'Rail Track', 'Road', 'Service Lane',
     'Sidewalk', 'Bridge', 'Building', 'Tunnel', 'Lane Marking - General',
     'Mountain', 'Sand', 'Sky', 'Snow', 'Terrain', 'Vegetation', 'Water',
     'Pothole', 'On Rails', 'Car Mount', 'Ego Vehicle'),
    category_ids=(1, 2, 9, 20, 21, 22, 23, 24, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
     45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 60, 61, 62, 63, 3,
     4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 25, 26, 27, 28, 29,
     30, 31, 32, 44, 59, 64, 65),
)

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='m2f_mm.LoadPanopticAnnotations', with_bbox=True, with_mask=True,
         with_seg=True, backend_args=backend_args),
    # shortest edge 2048 x 0.5..2.0 (step 0.1), longest at most 8192
    dict(type='RandomChoiceResize',
         scales=[(8192, int(2048 * x * 0.1)) for x in range(5, 21)],
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
    dict(type='Resize', scale=(2048, 2048), keep_ratio=True),
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
        ann_file='training/panoptic/panoptic_2018.json',
        data_prefix=dict(img='training/images/', seg='training/panoptic/'),
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
        ann_file='validation/panoptic/panoptic_2018.json',
        data_prefix=dict(img='validation/images/', seg='validation/panoptic/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

# hotcoco-backed, MMDet's numbers (README "Evaluation"); the slow form is
# m2f_mm.CocoPanopticMetric (MMDet's with labels mapped
# through category_ids; MMDet's own would take the file's class order)
val_evaluator = dict(
    type='m2f_mm.FastCocoPanopticMetric',
    ann_file=data_root + 'validation/panoptic/panoptic_2018.json',
    seg_prefix=data_root + 'validation/panoptic/',
    backend_args=backend_args)
test_evaluator = val_evaluator
