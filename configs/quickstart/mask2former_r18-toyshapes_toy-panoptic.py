# The quickstart's model: mask2former_r18_toy-panoptic.py with its ResNet-18
# starting from weights pretrained on the toy shapes instead of from scratch.
# The paper's backbones start ImageNet-pretrained; there is no ImageNet here,
# so tools/pretrain_backbone.py gives the backbone the same kind of start on
# the toy train split (each thing's ground-truth mask pools the stride-8
# features, one linear layer names the shape; 800 steps, 80 % of the val
# things named right). tools/quickstart.py runs it first and points
# `checkpoint` at its work dir. From scratch, 630 iterations named 55 % of the
# val things right (PQ things 44.6; README, "Quickstart results").
_base_ = './mask2former_r18_toy-panoptic.py'

# written by: python tools/pretrain_backbone.py --out <this path>
pretrained = 'work_dirs/quickstart/backbone_toyshapes.pth'
model = dict(
    backbone=dict(init_cfg=dict(_delete_=True, type='Pretrained',
                                checkpoint=pretrained, prefix='backbone.')))

# a pretrained backbone needs fewer iterations: 450 instead of 630 keep the
# whole quickstart (the 800 pretraining steps included) within ten minutes
max_iters = 450
val_interval = 150
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', begin=50, end=max_iters, by_epoch=False,
         T_max=max_iters - 50, eta_min=1e-6),
]
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=max_iters))
