# Mask2Former R-101, COCO panoptic, 50 epochs (paper: 52.6 PQ).
_base_ = './mask2former_r50_coco-panoptic.py'
model = dict(backbone=dict(
    depth=101,
    init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
