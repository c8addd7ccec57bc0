# Mask2Former Swin-S (ImageNet-1k, 224), COCO instance segmentation, 50 epochs
# (paper: 46.3 AP).
_base_ = ['./mask2former_r50_coco-instance.py', './_base_/swin.py']
model = dict(backbone={{_base_.swin_s_backbone}},
             panoptic_head=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = dict(paramwise_cfg=dict(
    custom_keys={{_base_.swin_custom_keys}}, norm_decay_mult=0.0))
