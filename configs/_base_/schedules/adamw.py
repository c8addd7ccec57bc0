# The paper's optimizer, shared by every zoo schedule: AdamW 1e-4, weight
# decay 0.05, backbone lr x0.1, no decay on query/level embeddings and norms,
# gradient clipping at 0.01 (L2 of the whole model).
embed_multi = dict(lr_mult=1.0, decay_mult=0.0)
optim_wrapper = dict(
    type='OptimWrapper',
    # one parameter group per distinct lr / weight decay, not per parameter,
    # and PyTorch's fused AdamW: a few kernels a step instead of thousands
    constructor='m2f_mm.GroupedOptimWrapperConstructor',
    optimizer=dict(
        type='AdamW', lr=0.0001, weight_decay=0.05, eps=1e-8,
        betas=(0.9, 0.999), fused=True),
    paramwise_cfg=dict(
        custom_keys={
            'backbone': dict(lr_mult=0.1, decay_mult=1.0),
            'query_embed': embed_multi,
            'query_feat': embed_multi,
            'level_embed': embed_multi,
        },
        norm_decay_mult=0.0),
    clip_grad=dict(max_norm=0.01, norm_type=2))
# resuming a checkpoint saved with one parameter group per parameter: the
# param schedulers' per-group values follow the merged groups; the losses
# reach the logs in one copy from the GPU, not one synchronisation each
custom_hooks = [dict(type='m2f_mm.MergedGroupsResumeHook'),
                dict(type='m2f_mm.LogVarsToHostHook')]
