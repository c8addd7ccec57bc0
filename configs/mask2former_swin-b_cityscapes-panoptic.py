# Mask2Former Swin-B (ImageNet-22k, 384), Cityscapes panoptic, 90k iterations, 512x1024 crops, 100 queries
# (paper: 66.1 PQ).
_base_ = ['./mask2former_r50_cityscapes-panoptic.py', './_base_/swin.py']
model = dict(backbone={{_base_.swin_b_backbone}},
             panoptic_head=dict(num_queries=100, in_channels=[128, 256, 512, 1024]))
optim_wrapper = dict(paramwise_cfg=dict(
    custom_keys={{_base_.swin_custom_keys}}, norm_decay_mult=0.0))
