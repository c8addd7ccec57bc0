# Mask2Former Swin-L (ImageNet-22k, 384), COCO panoptic: 200 queries, 100 epochs
# (paper: 57.8 PQ). Batch 16 as 16 GPUs x 1 image.
_base_ = ['./mask2former_r50_coco-panoptic.py', './_base_/swin.py']
model = dict(backbone={{_base_.swin_l_backbone}},
             panoptic_head=dict(num_queries=200, in_channels=[192, 384, 768, 1536]))
optim_wrapper = dict(paramwise_cfg=dict(
    custom_keys={{_base_.swin_custom_keys}}, norm_decay_mult=0.0))

train_dataloader = dict(batch_size=1, num_workers=1)

# 100 epochs at batch 16; lr x0.1 at 0.9 and 0.95 of the schedule
max_iters = 737500
interval = 5000
param_scheduler = dict(end=max_iters,
                       milestones=[int(max_iters * 0.9), int(max_iters * 0.95)])
train_cfg = dict(
    max_iters=max_iters,
    val_interval=interval,
    dynamic_intervals=[(max_iters // interval * interval + 1, max_iters)])
