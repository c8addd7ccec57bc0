# Mask2Former Swin-L (ImageNet-22k, 384), Mapillary Vistas panoptic, 300k iterations, 1024x1024 crops, 200 queries
# (paper: 45.5 PQ).
_base_ = ['./mask2former_r50_mapillary-panoptic.py', './_base_/swin.py']
model = dict(backbone={{_base_.swin_l_backbone}},
             panoptic_head=dict(num_queries=200, in_channels=[192, 384, 768, 1536]))
optim_wrapper = dict(paramwise_cfg=dict(
    custom_keys={{_base_.swin_custom_keys}}, norm_decay_mult=0.0))
train_dataloader = dict(batch_size=1, num_workers=1)  # 16 GPUs x 1 image

