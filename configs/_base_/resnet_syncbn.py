# The original trains the ResNet's BN layers on Cityscapes, synchronised across
# GPUs (RESNETS.NORM "SyncBN", FREEZE_AT 0); elsewhere it keeps them frozen
# (detectron2's FrozenBN, our base models' default). Use over a ResNet as
# `backbone={{_base_.resnet_syncbn}}`; on one process mmengine's Runner makes
# the layers plain BN.
resnet_syncbn = dict(norm_cfg=dict(type='SyncBN', requires_grad=True), norm_eval=False)
