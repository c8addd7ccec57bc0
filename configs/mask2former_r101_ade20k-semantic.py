# Mask2Former R-101, ADE20K semantic segmentation, 160k iterations, 512x512
# crops (paper: 47.8 mIoU single-scale).
_base_ = './mask2former_r50_ade20k-semantic.py'
model = dict(backbone=dict(
    depth=101,
    init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
