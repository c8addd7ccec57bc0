# Mask2Former Swin-B (ImageNet-22k, 384), ADE20K semantic segmentation, 160k
# iterations, 640x640 crops, tested at shortest edge 640 (paper: 53.9 mIoU
# single-scale; 52.4 from ImageNet-1k weights, the same architecture: only the
# pretrained init_cfg differs).
_base_ = [
    'mmseg::_base_/default_runtime.py',
    './_base_/models/mask2former_r50_semantic.py',
    './_base_/datasets/ade20k_semantic_640.py',
    './_base_/schedules/schedule_160k.py',
    './_base_/swin.py',
    './_base_/swin_seg.py',
]
default_scope = 'mmseg'
custom_imports = dict(imports=['m2f_mm'], allow_failed_imports=False)

num_classes = 150
crop_size = (640, 640)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone={{_base_.swin_b_seg_backbone}},
    decode_head=dict(num_classes=num_classes, in_channels=[128, 256, 512, 1024]))
optim_wrapper = dict(paramwise_cfg=dict(
    custom_keys={{_base_.swin_custom_keys}}, norm_decay_mult=0.0))
