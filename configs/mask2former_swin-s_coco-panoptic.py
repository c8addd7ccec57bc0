# Mask2Former Swin-S (ImageNet-1k, 224), COCO panoptic, 50 epochs (paper: 54.6 PQ).
_base_ = './mask2former_swin-t_coco-panoptic.py'
pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_small_patch4_window7_224.pth'  # noqa
model = dict(backbone=dict(
    depths=[2, 2, 18, 2], init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
