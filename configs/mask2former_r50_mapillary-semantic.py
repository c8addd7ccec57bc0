# Mask2Former R-50, Mapillary Vistas semantic segmentation (65 classes), 300k
# iterations, 1024x1024 crops, batch 16 (paper: 57.4 mIoU single-scale).
_base_ = [
    'mmseg::_base_/default_runtime.py',
    './_base_/models/mask2former_r50_semantic.py',
    './_base_/datasets/mapillary_semantic.py',
    './_base_/schedules/schedule_160k.py',
]
default_scope = 'mmseg'
custom_imports = dict(imports=['m2f_mm'], allow_failed_imports=False)

num_classes = 65
crop_size = (1024, 1024)
max_iters = 300000
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=num_classes))
param_scheduler = [
    dict(type='PolyLR', eta_min=0, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters)
