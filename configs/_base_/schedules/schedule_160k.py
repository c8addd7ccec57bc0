# Mask2Former's semantic schedule (paper, ADE20K): AdamW 1e-4, weight decay
# 0.05, backbone lr x0.1, no decay on query/level embeddings and norms,
# gradient clipping at 0.01 (L2 of the whole model), poly lr (power 0.9),
# 160k iterations at batch 16.
_base_ = './adamw.py'  # the paper's AdamW, groups and clipping

max_iters = 160000
interval = 5000

param_scheduler = [
    dict(type='PolyLR', eta_min=0, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]

train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # written atomically (m2f_mm/patches.py; custom_imports=['m2f_mm'])
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=interval,
                    save_best='mIoU',
                    backend_args=dict(backend='m2f_mm_atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))

# batch 16 = 8 GPUs x 2 images
auto_scale_lr = dict(enable=False, base_batch_size=16)
