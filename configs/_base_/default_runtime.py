# MMDetection's runtime (default_scope='mmdet', hooks, visualizer), set up for
# iteration-based schedules.
_base_ = 'mmdet::_base_/default_runtime.py'

default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, save_last=True,
                    max_keep_ckpts=3, interval=5000))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
