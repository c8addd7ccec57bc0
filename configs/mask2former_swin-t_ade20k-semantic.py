# Mask2Former Swin-T (ImageNet-1k, 224), ADE20K semantic segmentation, 160k
# iterations, 512x512 crops (paper: 47.7 mIoU single-scale).
_base_ = ['./mask2former_r50_ade20k-semantic.py', './_base_/swin.py',
          './_base_/swin_seg.py']
model = dict(backbone={{_base_.swin_t_seg_backbone}},
             decode_head=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = dict(paramwise_cfg=dict(
    custom_keys={{_base_.swin_custom_keys}}, norm_decay_mult=0.0))
