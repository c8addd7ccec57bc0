# Mask2Former Swin-B (ImageNet-22k, 384), COCO instance segmentation, 50 epochs
# (paper: 48.1 AP; 46.7 AP from ImageNet-1k weights, the same architecture:
# only the pretrained init_cfg differs).
_base_ = ['./mask2former_r50_coco-instance.py', './_base_/swin.py']
model = dict(backbone={{_base_.swin_b_backbone}},
             panoptic_head=dict(in_channels=[128, 256, 512, 1024]))
optim_wrapper = dict(paramwise_cfg=dict(
    custom_keys={{_base_.swin_custom_keys}}, norm_decay_mult=0.0))
