# Mask2Former R-50, ADE20K instance (100 things), 160k iterations, 640x640 crops, batch 16
# (paper: 26.4 AP). Classes are things first; a checkpoint of the
# original converts with tools/convert_checkpoint.py d2 ... --dataset ade20k-instance.
_base_ = [
    './_base_/models/mask2former_r50.py',
    './_base_/datasets/ade20k_instance.py',
    './_base_/schedules/poly_det.py',
    './_base_/default_runtime.py',
]
num_things_classes = 100
num_stuff_classes = 0
num_classes = num_things_classes + num_stuff_classes
max_iters = 160000
model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(type='BatchFixedSizePad', size=(640, 640), img_pad_value=0,
             pad_mask=True, mask_pad_value=0, pad_seg=True, seg_pad_value=255)
    ]),
    panoptic_head=dict(num_things_classes=num_things_classes,
                       num_stuff_classes=num_stuff_classes),
    test_cfg=dict(panoptic_on=False, instance_on=True, semantic_on=False),
)
param_scheduler = dict(end=max_iters)
train_cfg = dict(max_iters=max_iters)
