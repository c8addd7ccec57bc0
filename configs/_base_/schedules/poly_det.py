# The paper's Cityscapes / ADE20K / Mapillary schedule for MMDetection hosts
# (panoptic and instance): AdamW 1e-4, weight decay 0.05, backbone lr x0.1, no
# decay on embeddings and norms, clipping at 0.01 (L2 of the whole model), poly
# lr (power 0.9), batch 16. Top-level configs set max_iters (90k Cityscapes,
# 160k ADE20K, 300k Mapillary) in param_scheduler and train_cfg.
_base_ = './adamw.py'  # the paper's AdamW, groups and clipping

max_iters = 90000
interval = 5000

param_scheduler = dict(type='PolyLR', eta_min=0, power=0.9, begin=0,
                       end=max_iters, by_epoch=False)

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

auto_scale_lr = dict(enable=False, base_batch_size=16)
