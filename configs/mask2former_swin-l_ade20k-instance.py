# Mask2Former Swin-L (ImageNet-22k, 384), ADE20K instance (100 things), 160k iterations, 640x640 crops, 200 queries
# (paper: 34.9 AP).
_base_ = ['./mask2former_r50_ade20k-instance.py', './_base_/swin.py']
model = dict(backbone={{_base_.swin_l_backbone}},
             panoptic_head=dict(num_queries=200, in_channels=[192, 384, 768, 1536]))
optim_wrapper = dict(paramwise_cfg=dict(
    custom_keys={{_base_.swin_custom_keys}}, norm_decay_mult=0.0))
train_dataloader = dict(batch_size=1, num_workers=1)  # 16 GPUs x 1 image

