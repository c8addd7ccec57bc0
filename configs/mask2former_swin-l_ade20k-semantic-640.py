# Mask2Former Swin-L (ImageNet-22k, 384), ADE20K semantic segmentation, 160k
# iterations, 640x640 crops, tested at shortest edge 640: the paper's setting
# (56.1 mIoU single-scale, 57.3 multi-scale); 100 queries.
_base_ = ['./mask2former_swin-b_ade20k-semantic-640.py']
model = dict(backbone={{_base_.swin_l_seg_backbone}},
             decode_head=dict(in_channels=[192, 384, 768, 1536]))
