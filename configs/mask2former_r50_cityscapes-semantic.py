# Mask2Former R-50, Cityscapes semantic segmentation, 90k iterations,
# 512x1024 crops, batch 16 (8 GPUs x 2) (paper: 79.4 mIoU single-scale).
_base_ = [
    'mmseg::_base_/default_runtime.py',
    './_base_/models/mask2former_r50_semantic.py',
    './_base_/datasets/cityscapes_semantic.py',
    './_base_/schedules/schedule_90k.py',
    './_base_/resnet_syncbn.py',
]
default_scope = 'mmseg'
custom_imports = dict(imports=['m2f_mm'], allow_failed_imports=False)

num_classes = 19
crop_size = (512, 1024)
model = dict(
    backbone={{_base_.resnet_syncbn}},  # the original's Cityscapes BN
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=num_classes))
