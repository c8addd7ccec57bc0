# Swin backbones: lr x0.1 for the whole backbone, no weight decay on its norms
# and position tables, nor on the decoder's query/level embeddings. Covers
# depths up to [2, 2, 18, 2] (Swin-T/S/B/L); keys matching no parameter are
# harmless. Use as `custom_keys={{_base_.swin_custom_keys}}`.
_backbone_norm = dict(lr_mult=0.1, decay_mult=0.0)
_embed = dict(lr_mult=1.0, decay_mult=0.0)
swin_custom_keys = {
    'backbone': dict(lr_mult=0.1, decay_mult=1.0),
    'backbone.patch_embed.norm': _backbone_norm,
    'backbone.norm': _backbone_norm,
    'absolute_pos_embed': _backbone_norm,
    'relative_position_bias_table': _backbone_norm,
    'query_embed': _embed,
    'query_feat': _embed,
    'level_embed': _embed,
}
swin_custom_keys.update({
    f'backbone.stages.{stage}.blocks.{block}.norm': _backbone_norm
    for stage, num_blocks in enumerate([2, 2, 18, 2])
    for block in range(num_blocks)
})
swin_custom_keys.update({
    f'backbone.stages.{stage}.downsample.norm': _backbone_norm
    for stage in range(3)
})

# Swin backbones (MMDet's/MMSeg's SwinTransformer), ready to replace a ResNet
# with `backbone={{_base_.swin_t_backbone}}` (each carries `_delete_=True`).
# Pretrained weights: ImageNet-1k 224 (T, S), ImageNet-22k 384 (B, L).
_swin_url = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/'
_swin_common = dict(
    _delete_=True,
    type='SwinTransformer',
    mlp_ratio=4,
    qkv_bias=True,
    qk_scale=None,
    drop_rate=0.,
    attn_drop_rate=0.,
    drop_path_rate=0.3,
    patch_norm=True,
    out_indices=(0, 1, 2, 3),
    with_cp=False,
    convert_weights=True,
    frozen_stages=-1)
swin_t_backbone = dict(
    _swin_common, embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24],
    window_size=7, init_cfg=dict(type='Pretrained', checkpoint=_swin_url +
                                 'swin_tiny_patch4_window7_224.pth'))
swin_s_backbone = dict(
    swin_t_backbone, depths=[2, 2, 18, 2],
    init_cfg=dict(type='Pretrained',
                  checkpoint=_swin_url + 'swin_small_patch4_window7_224.pth'))
swin_b_backbone = dict(
    _swin_common, pretrain_img_size=384, embed_dims=128, depths=[2, 2, 18, 2],
    num_heads=[4, 8, 16, 32], window_size=12,
    init_cfg=dict(type='Pretrained', checkpoint=_swin_url +
                  'swin_base_patch4_window12_384_22k.pth'))
swin_l_backbone = dict(
    swin_b_backbone, embed_dims=192, num_heads=[6, 12, 24, 48],
    init_cfg=dict(type='Pretrained', checkpoint=_swin_url +
                  'swin_large_patch4_window12_384_22k.pth'))
