# Mask2Former R-101, Cityscapes instance (8 things), 90k iterations, 512x1024 crops (paper: 38.5 AP).
_base_ = './mask2former_r50_cityscapes-instance.py'
model = dict(backbone=dict(
    depth=101,
    init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
