# Mask2Former Swin-T (ImageNet-1k, 224), Cityscapes panoptic, 90k iterations, 512x1024 crops, 100 queries
# (paper: 63.9 PQ).
_base_ = ['./mask2former_r50_cityscapes-panoptic.py', './_base_/swin.py']
model = dict(backbone={{_base_.swin_t_backbone}},
             panoptic_head=dict(num_queries=100, in_channels=[96, 192, 384, 768]))
optim_wrapper = dict(paramwise_cfg=dict(
    custom_keys={{_base_.swin_custom_keys}}, norm_decay_mult=0.0))
