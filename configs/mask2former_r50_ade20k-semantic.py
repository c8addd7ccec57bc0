# Mask2Former R-50, ADE20K semantic segmentation, 160k iterations, 512x512
# crops, batch 16 (8 GPUs x 2) (paper: 47.2 mIoU single-scale).
# Train: tools/train.py configs/mask2former_r50_ade20k-semantic.py
# TTA:   tools/test.py ... --tta (multi-scale + flip via MMSeg's SegTTAModel)
_base_ = [
    'mmseg::_base_/default_runtime.py',
    './_base_/models/mask2former_r50_semantic.py',
    './_base_/datasets/ade20k_semantic.py',
    './_base_/schedules/schedule_160k.py',
]
default_scope = 'mmseg'
custom_imports = dict(imports=['m2f_mm'], allow_failed_imports=False)

num_classes = 150
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=num_classes))
