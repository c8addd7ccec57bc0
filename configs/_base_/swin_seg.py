# Swin backbones for MMSegmentation hosts: MMSeg's SwinTransformer takes no
# convert_weights and loads MMSeg's converted ImageNet checkpoints. Ready to
# replace a ResNet with `backbone={{_base_.swin_t_seg_backbone}}` (each carries
# `_delete_=True`). ImageNet-1k 224 (T, S), ImageNet-22k 384 (B, L).
_seg_swin_url = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/swin/'
_seg_swin_common = dict(
    _delete_=True,
    type='SwinTransformer',
    patch_size=4,
    mlp_ratio=4,
    qkv_bias=True,
    qk_scale=None,
    drop_rate=0.,
    attn_drop_rate=0.,
    drop_path_rate=0.3,
    patch_norm=True,
    out_indices=(0, 1, 2, 3),
    with_cp=False,
    frozen_stages=-1)
swin_t_seg_backbone = dict(
    _seg_swin_common, pretrain_img_size=224, embed_dims=96, depths=[2, 2, 6, 2],
    num_heads=[3, 6, 12, 24], window_size=7,
    init_cfg=dict(type='Pretrained', checkpoint=_seg_swin_url +
                  'swin_tiny_patch4_window7_224_20220317-1cdeb081.pth'))
swin_s_seg_backbone = dict(
    swin_t_seg_backbone, depths=[2, 2, 18, 2],
    init_cfg=dict(type='Pretrained', checkpoint=_seg_swin_url +
                  'swin_small_patch4_window7_224_20220317-7ba6d6dd.pth'))
swin_b_seg_backbone = dict(
    _seg_swin_common, pretrain_img_size=384, embed_dims=128, depths=[2, 2, 18, 2],
    num_heads=[4, 8, 16, 32], window_size=12,
    init_cfg=dict(type='Pretrained', checkpoint=_seg_swin_url +
                  'swin_base_patch4_window12_384_22k_20220317-e5c09f74.pth'))
swin_l_seg_backbone = dict(
    swin_b_seg_backbone, embed_dims=192, num_heads=[6, 12, 24, 48],
    init_cfg=dict(type='Pretrained', checkpoint=_seg_swin_url +
                  'swin_large_patch4_window12_384_22k_20220412-6580f57d.pth'))
