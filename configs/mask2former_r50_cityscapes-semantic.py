# Mask2Former R-50, Cityscapes semantic segmentation, 90k iterations,
# 512x1024 crops, batch 16 (8 GPUs x 2) (paper: 79.4 mIoU single-scale).
_base_ = [
    'mmseg::_base_/default_runtime.py',
    './_base_/models/mask2former_r50_semantic.py',
    './_base_/datasets/cityscapes_semantic.py',
    './_base_/schedules/schedule_90k.py',
]
default_scope = 'mmseg'
custom_imports = dict(imports=['m2f_mm'], allow_failed_imports=False)

num_classes = 19
crop_size = (512, 1024)
# the original trains the ResNet's BN layers on Cityscapes, synchronised across
# GPUs (RESNETS.NORM "SyncBN", FREEZE_AT 0); on one process mmengine's Runner
# makes them plain BN
syncbn = dict(norm_cfg=dict(type='SyncBN', requires_grad=True), norm_eval=False)
model = dict(
    backbone=syncbn,
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=num_classes))
