# Mask2Former's semantic schedule for Cityscapes: the 160k one (AdamW 1e-4,
# weight decay 0.05, backbone lr x0.1, clipping 0.01, poly 0.9) over 90k
# iterations at batch 16.
_base_ = './schedule_160k.py'

max_iters = 90000
param_scheduler = [
    dict(type='PolyLR', eta_min=0, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters)
