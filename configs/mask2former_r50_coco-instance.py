# Mask2Former R-50, COCO instance segmentation (things only), 50 epochs,
# LSJ 1024 (paper: 43.7 mask AP).
_base_ = [
    './_base_/models/mask2former_r50.py',
    './_base_/datasets/coco_instance_lsj.py',
    './_base_/schedules/mask2former_50e.py',
    './_base_/default_runtime.py',
]
num_things_classes = 80
num_stuff_classes = 0
num_classes = num_things_classes + num_stuff_classes
model = dict(
    panoptic_head=dict(num_things_classes=num_things_classes,
                       num_stuff_classes=num_stuff_classes),
    test_cfg=dict(panoptic_on=False))
