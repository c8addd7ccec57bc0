# Mask2Former R-50, Cityscapes panoptic, 90k iterations, 512x1024 crops, batch 16
# (paper: 62.1 PQ). Classes are things first; a checkpoint of the
# original converts with tools/convert_checkpoint.py d2 ... --dataset cityscapes-panoptic.
_base_ = [
    './_base_/models/mask2former_r50.py',
    './_base_/datasets/cityscapes_panoptic.py',
    './_base_/schedules/poly_det.py',
    './_base_/default_runtime.py',
    './_base_/resnet_syncbn.py',
]
num_things_classes = 8
num_stuff_classes = 11
num_classes = num_things_classes + num_stuff_classes
max_iters = 90000
model = dict(
    backbone={{_base_.resnet_syncbn}},  # the original's Cityscapes BN
    data_preprocessor=dict(batch_augments=[
        dict(type='BatchFixedSizePad', size=(512, 1024), img_pad_value=0,
             pad_mask=True, mask_pad_value=0, pad_seg=True, seg_pad_value=255)
    ]),
    panoptic_head=dict(num_things_classes=num_things_classes,
                       num_stuff_classes=num_stuff_classes),
    # the original's OBJECT_MASK_THRESHOLD for this dataset
    test_cfg=dict(panoptic_on=True, instance_on=False, semantic_on=False,
                  object_mask_thr=0.8),
)
param_scheduler = dict(end=max_iters)
train_cfg = dict(max_iters=max_iters)
