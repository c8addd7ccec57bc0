# Mapillary Vistas v1.2 semantic (65 classes), as the paper trains it: shortest
# edge 1024..4096 (max 8192), 1024x1024 crops, flip, photometric distortion;
# test at shortest edge 2048 (max 2048). Labels as released
# ({training,validation}/labels/*.png); label 65 ('Unlabeled') becomes 255
# (ignored) because the metainfo leaves it out (m2f_mm.MapillaryVistasSemanticDataset).
dataset_type = 'm2f_mm.MapillaryVistasSemanticDataset'
data_root = 'data/mapillary_vistas/'
crop_size = (1024, 1024)
metainfo = dict(
    classes=('Bird', 'Ground Animal', 'Curb', 'Fence', 'Guard Rail', 'Barrier', 'Wall',
     'Bike Lane', 'Crosswalk - Plain', 'Curb Cut', 'Parking', 'Pedestrian Area',
     'Rail Track', 'Road', 'Service Lane', 'Sidewalk', 'Bridge', 'Building',
     'Tunnel', 'Person', 'Bicyclist', 'Motorcyclist', 'Other Rider',
     'Lane Marking - Crosswalk', 'Lane Marking - General', 'Mountain', 'Sand',
     'Sky', 'Snow', 'Terrain', 'Vegetation', 'Water', 'Banner', 'Bench',
     'Bike Rack', 'Billboard', 'Catch Basin', 'CCTV Camera', 'Fire Hydrant',
     'Junction Box', 'Mailbox', 'Manhole', 'Phone Booth', 'Pothole',
     'Street Light', 'Pole', 'Traffic Sign Frame', 'Utility Pole',
     'Traffic Light', 'Traffic Sign (Back)', 'Traffic Sign (Front)',
     'Trash Can', 'Bicycle', 'Boat', 'Bus', 'Car', 'Caravan', 'Motorcycle',
     'On Rails', 'Other Vehicle', 'Trailer', 'Truck', 'Wheeled Slow',
     'Car Mount', 'Ego Vehicle'))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomChoiceResize',
        scales=[int(2048 * x * 0.1) for x in range(5, 21)],
        resize_type='ResizeShortestEdge',
        max_size=8192),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=1.0),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
    dict(type='m2f_mm.BuildMaskTargets', ignore_index=255),  # head's counts
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 2048), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        data_prefix=dict(img_path='training/images', seg_map_path='training/labels'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        data_prefix=dict(img_path='validation/images',
                         seg_map_path='validation/labels'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
