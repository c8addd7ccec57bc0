# Mask2Former Swin-L (ImageNet-22k, 384), ADE20K semantic segmentation,
# 160k iterations, batch 16, 512x512 crops (the paper trains Swin-L with
# 640x640 crops and reports 56.1 mIoU single-scale; change crop_size in the
# dataset and the data preprocessor's size to follow it). MMSeg's Swin takes
# no convert_weights and loads MMSeg's converted checkpoint.
_base_ = ['./mask2former_r50_ade20k-semantic.py', './_base_/swin.py']
pretrained = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/swin/swin_large_patch4_window12_384_22k_20220412-6580f57d.pth'  # noqa
model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        pretrain_img_size=384,
        embed_dims=192,
        patch_size=4,
        depths=[2, 2, 18, 2],
        num_heads=[6, 12, 24, 48],
        window_size=12,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.3,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        frozen_stages=-1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[192, 384, 768, 1536]))
optim_wrapper = dict(paramwise_cfg=dict(
    custom_keys={{_base_.swin_custom_keys}}, norm_decay_mult=0.0))
