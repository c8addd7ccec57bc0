# Mask2Former R-50, COCO panoptic, with MaskFormer's FPN pixel decoder instead
# of the 6-layer deformable-attention one: faster (the Mask2Former authors'
# choice when speed matters), somewhat lower PQ. Everything else as
# mask2former_r50_coco-panoptic.py. The head fills in in_channels, strides,
# feat_channels and out_channels.
_base_ = './mask2former_r50_coco-panoptic.py'

model = dict(
    panoptic_head=dict(
        pixel_decoder=dict(
            _delete_=True,
            type='m2f_mm.FPNPixelDecoder',
            num_outs=3,
            norm_cfg=dict(type='GN', num_groups=32),
            act_cfg=dict(type='ReLU'))))
