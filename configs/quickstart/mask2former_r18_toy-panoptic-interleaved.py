# The quickstart model on the interleaved toy variant
# (tools/make_toy_dataset.py --interleaved --out data/toy_interleaved): category
# ids put stuff between things (sky 1, circle 2, grass 3, square 4, water 5,
# triangle 6), as Cityscapes / ADE20K / Mapillary do. Labels stay things first;
# the metainfo's category_ids map them to the file's ids
# (m2f_mm/datasets/toy.py TOY_INTERLEAVED_PANOPTIC_METAINFO).
_base_ = './mask2former_r18_toy-panoptic.py'

data_root = 'data/toy_interleaved/'
metainfo = dict(
    classes=('circle', 'square', 'triangle', 'sky', 'grass', 'water'),
    thing_classes=('circle', 'square', 'triangle'),
    stuff_classes=('sky', 'grass', 'water'),
    category_ids=(2, 4, 6, 1, 3, 5),
    palette=[(220, 20, 60), (255, 165, 0), (148, 0, 211), (135, 190, 235),
             (70, 150, 60), (30, 70, 160)])
train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
test_dataloader = val_dataloader
# ours map labels through category_ids (MMDet's use the file's order); the
# Fast ones are hotcoco-backed, the slow m2f_mm.CocoPanopticMetric / CocoMetric
# give the same numbers
val_evaluator = [
    dict(type='m2f_mm.FastCocoPanopticMetric',
         ann_file=data_root + 'annotations/panoptic_val.json',
         seg_prefix=data_root + 'annotations/panoptic_val/'),
    dict(type='m2f_mm.FastCocoMetric',
         ann_file=data_root + 'annotations/instances_val.json',
         metric=['segm']),
    # the semantic maps hold labels (things first), not category ids
    dict(type='m2f_mm.SemSegIoUMetric', iou_metrics=['mIoU']),
]
test_evaluator = [dict(e, classwise=True) for e in val_evaluator]
