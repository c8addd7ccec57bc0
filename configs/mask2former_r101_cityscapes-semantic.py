# Mask2Former R-101, Cityscapes semantic segmentation, 90k iterations,
# 512x1024 crops (paper: 80.1 mIoU single-scale).
_base_ = './mask2former_r50_cityscapes-semantic.py'
model = dict(backbone=dict(
    depth=101,
    init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
