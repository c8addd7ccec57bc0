# Mask2Former R-101, COCO instance segmentation, 50 epochs (paper: 44.2 AP).
_base_ = './mask2former_r50_coco-instance.py'
model = dict(backbone=dict(
    depth=101,
    init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
