# AdamW 1e-4, weight decay 0.05, backbone lr x0.1, no decay on embeddings and
# norms, gradient clipping at 0.01 (L2 of the whole model); 50 COCO epochs at
# batch 16 = 368750 iterations, lr x0.1 at 0.9 and 0.95 of the schedule.
_base_ = './adamw.py'  # the paper's AdamW, groups and clipping

max_iters = 368750
interval = 5000

param_scheduler = dict(
    type='MultiStepLR',
    begin=0,
    end=max_iters,
    by_epoch=False,
    milestones=[int(max_iters * 0.9), int(max_iters * 0.95)],
    gamma=0.1)

train_cfg = dict(
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=interval,
    dynamic_intervals=[(max_iters // interval * interval + 1, max_iters)])
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

auto_scale_lr = dict(enable=False, base_batch_size=16)
