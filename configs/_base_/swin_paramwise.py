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
