# MMDetection's runtime (default_scope='mmdet', hooks, visualizer), set up for
# iteration-based schedules. Checkpoints are written atomically and empty
# panoptic predictions draw (m2f_mm/patches.py; custom_imports=['m2f_mm']).
_base_ = 'mmdet::_base_/default_runtime.py'

default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, save_last=True,
                    max_keep_ckpts=3, interval=5000,
                    backend_args=dict(backend='m2f_mm_atomic_local')))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
visualizer = dict(type='m2f_mm.DetLocalVisualizer')
# TF32 on CUDA (m2f_mm/utils/tf32.py): None keeps PyTorch's defaults (matmul off,
# cuDNN convolutions on), True/False turns both on/off; tools: --tf32 on|off
env_cfg = dict(tf32=None)
