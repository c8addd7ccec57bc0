# Mask2Former Swin-L (ImageNet-22k, 384), ADE20K semantic segmentation,
# 160k iterations, batch 16, 512x512 crops (the paper trains Swin-L with
# 640x640 crops and reports 56.1 mIoU single-scale:
# mask2former_swin-l_ade20k-semantic-640.py). The backbone is the one in
# _base_/swin_seg.py (MMSeg's Swin and its converted checkpoint).
_base_ = ['./mask2former_r50_ade20k-semantic.py', './_base_/swin.py',
          './_base_/swin_seg.py']
model = dict(backbone={{_base_.swin_l_seg_backbone}},
             decode_head=dict(in_channels=[192, 384, 768, 1536]))
optim_wrapper = dict(paramwise_cfg=dict(
    custom_keys={{_base_.swin_custom_keys}}, norm_decay_mult=0.0))
