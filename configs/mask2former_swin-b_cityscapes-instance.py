# Mask2Former Swin-B (ImageNet-22k, 384), Cityscapes instance (8 things), 90k iterations, 512x1024 crops, 100 queries
# (paper: 42.0 AP).
_base_ = ['./mask2former_r50_cityscapes-instance.py', './_base_/swin.py']
model = dict(backbone={{_base_.swin_b_backbone}},
             panoptic_head=dict(num_queries=100, in_channels=[128, 256, 512, 1024]))
optim_wrapper = dict(paramwise_cfg=dict(
    custom_keys={{_base_.swin_custom_keys}}, norm_decay_mult=0.0))
