# ADE20K panoptic (150 classes: 100 things, 50 stuff), as the paper trains it:
# shortest edge 320..1280 (max 2560), 640x640 crops; test at shortest edge 640.
# Data: the original's datasets/prepare_ade20k_pan_seg.py (README, 'Datasets'):
# ADEChallengeData2016/ade20k_panoptic_{train,val}.json and PNG folders.
# Labels are things first (our head's and MMDetection's convention); the
# metainfo's category_ids give each label's dataset category id, and
# m2f_mm.CocoPanopticDataset / m2f_mm.CocoPanopticMetric map through them, so
# predictions and PQ things/stuff are in the dataset's own ids. Written from
# m2f_mm/datasets/categories.py (tests/test_zoo_configs.py checks they agree).
dataset_type = 'm2f_mm.CocoPanopticDataset'
data_root = 'data/ade/ADEChallengeData2016/'
backend_args = None
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
     'bulletin board', 'radiator', 'glass, drinking glass', 'clock', 'flag',
     'wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road, route',
     'grass', 'sidewalk, pavement', 'earth, ground', 'mountain, mount', 'plant',
     'water', 'house', 'sea', 'rug', 'field', 'rock, stone',
     'base, pedestal, stand', 'sand', 'skyscraper', 'grandstand, covered stand',
     'path', 'runway', 'stairway, staircase', 'river', 'bridge, span',
     'blind, screen', 'hill', 'bar', 'hovel, hut, hutch, shack, shanty',
     'tower', 'dirt track', 'land, ground, soil',
     'escalator, moving staircase, moving stairway',
     'buffet, counter, sideboard',
     'poster, posting, placard, notice, bill, card', 'stage',
     'conveyer belt, conveyor belt, conveyer, conveyor, transporter', 'canopy',
     'pool', 'falls', 'tent', 'cradle', 'tank, storage tank', 'lake',
     'blanket, cover', 'pier', 'crt screen', 'shower'),
    thing_classes=('bed', 'window ', 'cabinet', 'person', 'door', 'table', 'curtain', 'chair',
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
    stuff_classes=('wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road, route',
     'grass', 'sidewalk, pavement', 'earth, ground', 'mountain, mount', 'plant',
     'water', 'house', 'sea', 'rug', 'field', 'rock, stone',
     'base, pedestal, stand', 'sand', 'skyscraper', 'grandstand, covered stand',
     'path', 'runway', 'stairway, staircase', 'river', 'bridge, span',
     'blind, screen', 'hill', 'bar', 'hovel, hut, hutch, shack, shanty',
     'tower', 'dirt track', 'land, ground, soil',
     'escalator, moving staircase, moving stairway',
     'buffet, counter, sideboard',
     'poster, posting, placard, notice, bill, card', 'stage',
     'conveyer belt, conveyor belt, conveyer, conveyor, transporter', 'canopy',
     'pool', 'falls', 'tent', 'cradle', 'tank, storage tank', 'lake',
     'blanket, cover', 'pier', 'crt screen', 'shower'),
    category_ids=(7, 8, 10, 12, 14, 15, 18, 19, 20, 22, 23, 24, 27, 30, 31, 32, 33, 35, 36,
     37, 38, 39, 41, 42, 43, 44, 45, 47, 49, 50, 53, 55, 56, 57, 58, 62, 64, 65,
     66, 67, 69, 70, 71, 72, 73, 74, 75, 76, 78, 80, 81, 82, 83, 85, 86, 87, 88,
     89, 90, 92, 93, 95, 97, 98, 102, 103, 104, 107, 108, 110, 111, 112, 115,
     116, 118, 119, 120, 121, 123, 124, 125, 126, 127, 129, 130, 132, 133, 134,
     135, 136, 137, 138, 139, 142, 143, 144, 146, 147, 148, 149, 0, 1, 2, 3, 4,
     5, 6, 9, 11, 13, 16, 17, 21, 25, 26, 28, 29, 34, 40, 46, 48, 51, 52, 54,
     59, 60, 61, 63, 68, 77, 79, 84, 91, 94, 96, 99, 100, 101, 105, 106, 109,
     113, 114, 117, 122, 128, 131, 140, 141, 145),
)

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='m2f_mm.LoadPanopticAnnotations', with_bbox=True, with_mask=True,
         with_seg=True, backend_args=backend_args),
    # shortest edge 640 x 0.5..2.0 (step 0.1), longest at most 2560
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
        ann_file='ade20k_panoptic_train.json',
        data_prefix=dict(img='images/training/', seg='ade20k_panoptic_train/'),
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
        ann_file='ade20k_panoptic_val.json',
        data_prefix=dict(img='images/validation/', seg='ade20k_panoptic_val/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

# hotcoco-backed, MMDet's numbers (README "Evaluation"); the slow form is
# m2f_mm.CocoPanopticMetric (MMDet's with labels mapped
# through category_ids; MMDet's own would take the file's class order)
val_evaluator = dict(
    type='m2f_mm.FastCocoPanopticMetric',
    ann_file=data_root + 'ade20k_panoptic_val.json',
    seg_prefix=data_root + 'ade20k_panoptic_val/',
    backend_args=backend_args)
test_evaluator = val_evaluator
