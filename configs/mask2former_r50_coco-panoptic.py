# Mask2Former R-50, COCO panoptic, 50 epochs, LSJ 1024 (paper: 51.9 PQ).
_base_ = [
    './_base_/models/mask2former_r50.py',
    './_base_/datasets/coco_panoptic_lsj.py',
    './_base_/schedules/mask2former_50e.py',
    './_base_/default_runtime.py',
]
