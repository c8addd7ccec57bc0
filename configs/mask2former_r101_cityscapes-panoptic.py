# Mask2Former R-101, Cityscapes panoptic, 90k iterations, 512x1024 crops (paper: 62.4 PQ).
_base_ = './mask2former_r50_cityscapes-panoptic.py'
model = dict(backbone=dict(
    depth=101,
    init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
