"""FPNPixelDecoder (MaskFormer's FPN pixel decoder) as a drop-in for
MSDeformAttnPixelDecoder: shapes and level order, MMDetection's PixelDecoder
weights and outputs, its config, and a few Runner iterations that lower the
loss and then predict."""
import math
import os

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope
from mmengine.runner import Runner

from m2f_mm.models.pixel_decoders import FPNPixelDecoder, MSDeformAttnPixelDecoder
from m2f_mm.registry import MODELS, build
from test_training import REPO, short_run_cfg, toy_data, train_losses  # noqa: F401

R50_CHANNELS = [256, 512, 1024, 2048]
STRIDES = [4, 8, 16, 32]


def _feats(channels, sizes, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, h, w, generator=g)
            for c, (h, w) in zip(channels, sizes)]


@pytest.mark.parametrize('image', [(128, 128), (100, 164)],
                         ids=['square', 'non-square'])
def test_shapes_and_coarsest_first(image):
    """R-50 channels; a non-square image whose sides are not multiples of
    32 gives levels that are not exact halves of each other."""
    sizes = [(math.ceil(image[0] / s), math.ceil(image[1] / s)) for s in STRIDES]
    dec = FPNPixelDecoder(in_channels=R50_CHANNELS, strides=STRIDES,
                          feat_channels=256, out_channels=128)
    dec.init_weights()
    dec.eval()
    feats = _feats(R50_CHANNELS, sizes)
    with torch.no_grad():
        mask_features, pyramid = dec(feats)
        top = dec.last_feat_conv(feats[-1])
    assert mask_features.shape == (2, 128, *sizes[0])
    assert len(pyramid) == 3
    # coarsest first: 1/32, 1/16, 1/8, each with feat_channels
    assert [tuple(p.shape) for p in pyramid] == \
        [(2, 256, *sizes[3]), (2, 256, *sizes[2]), (2, 256, *sizes[1])]
    torch.testing.assert_close(pyramid[0], top)
    assert all(torch.isfinite(p).all() for p in [mask_features, *pyramid])


def test_same_interface_as_msdeformattn():
    """Both decoders, built as the head builds them, give outputs of the
    same shapes for the same features."""
    chans, sizes = [16, 32, 64, 128], [(16, 24), (8, 12), (4, 6), (2, 3)]
    common = dict(in_channels=chans, strides=STRIDES, feat_channels=32,
                  out_channels=24, norm_cfg=dict(type='GN', num_groups=8))
    # as the head builds them: resolving in our scope whatever the default scope
    fpn = build(dict(type='FPNPixelDecoder', **common), MODELS)
    msda = build(dict(type='MSDeformAttnPixelDecoder', num_layers=1,
                      num_heads=4, ffn_dims=32, **common), MODELS)
    feats = _feats(chans, sizes)
    a, pa = fpn(feats)
    b, pb = msda(feats)
    assert a.shape == b.shape
    assert [p.shape for p in pa] == [p.shape for p in pb]


def test_options_and_errors():
    chans, sizes = [16, 32, 64, 128], [(16, 16), (8, 8), (4, 4), (2, 2)]
    dec = FPNPixelDecoder(chans, STRIDES, 32, 32, num_outs=4,
                          upsample_mode='bilinear', mask_kernel_size=1,
                          norm_cfg=dict(type='GN', num_groups=8))
    mask_features, pyramid = dec(_feats(chans, sizes))
    assert dec.mask_feature.kernel_size == (1, 1)
    assert [p.shape[-1] for p in pyramid] == [2, 4, 8, 16]
    with pytest.raises(ValueError, match='differ in length'):
        FPNPixelDecoder(chans, STRIDES[:3])
    with pytest.raises(ValueError, match='finest first'):
        FPNPixelDecoder(chans[::-1], STRIDES[::-1])
    with pytest.raises(ValueError, match='num_outs'):
        FPNPixelDecoder(chans, STRIDES, num_outs=5)
    with pytest.raises(ValueError, match='expects 4 feature levels'):
        dec(_feats(chans, sizes)[1:])


def test_init_fills_every_conv():
    """caffe2_xavier (kaiming uniform, a=1) on every conv, biases zero."""
    dec = FPNPixelDecoder([16, 32, 64, 128], STRIDES, 32, 32,
                          norm_cfg=dict(type='GN', num_groups=8))
    for m in dec.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.zeros_(m.weight)
    dec.init_weights()
    for name, m in dec.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            bound = math.sqrt(3 / (m.in_channels * m.kernel_size[0] * m.kernel_size[1]))
            w = m.weight.abs().max().item()
            assert 0.5 * bound < w <= bound, name
            assert m.bias is None or not m.bias.any(), name


def test_loads_mmdet_pixel_decoder_weights_and_matches():
    """Same parameter names and shapes as mmdet.PixelDecoder (MaskFormer's
    FPN decoder); with its weights the mask features are the same."""
    from mmdet.models.layers import PixelDecoder
    chans, sizes = [16, 32, 64, 128], [(12, 20), (6, 10), (3, 5), (2, 3)]
    norm = dict(type='GN', num_groups=8)
    torch.manual_seed(0)
    ref = PixelDecoder(chans, feat_channels=32, out_channels=24, norm_cfg=norm)
    for p in ref.parameters():  # GN affine too, so a key mix-up shows
        torch.nn.init.normal_(p, std=0.2)
    ours = FPNPixelDecoder(chans, STRIDES, 32, 24, norm_cfg=norm)
    ours.load_state_dict(ref.state_dict(), strict=True)
    feats = _feats(chans, sizes)
    expected, _ = ref(feats, [{}])
    got, pyramid = ours(feats)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_config_replaces_only_the_pixel_decoder():
    fpn = Config.fromfile(os.path.join(REPO, 'configs/mask2former_r50-fpn_coco-panoptic.py'))
    base = Config.fromfile(os.path.join(REPO, 'configs/mask2former_r50_coco-panoptic.py'))
    decoder = fpn.model.panoptic_head.pop('pixel_decoder')
    base.model.panoptic_head.pop('pixel_decoder')
    assert decoder.to_dict() == dict(type='m2f_mm.FPNPixelDecoder', num_outs=3,
                                     norm_cfg=dict(type='GN', num_groups=32),
                                     act_cfg=dict(type='ReLU'))
    assert fpn.model.to_dict() == base.model.to_dict()
    assert fpn.train_dataloader.to_dict() == base.train_dataloader.to_dict()
    assert fpn.optim_wrapper.to_dict() == base.optim_wrapper.to_dict()

    fpn = Config.fromfile(os.path.join(REPO, 'configs/mask2former_r50-fpn_coco-panoptic.py'))
    with DefaultScope.overwrite_default_scope(fpn.default_scope):
        from mmengine.registry import MODELS as ROOT
        head = ROOT.build(fpn.model.panoptic_head)
    dec = head.pixel_decoder
    assert isinstance(dec, FPNPixelDecoder)
    assert [m.conv.in_channels for m in dec.lateral_convs] == R50_CHANNELS[:3]
    assert dec.last_feat_conv.conv.in_channels == 2048
    assert dec.mask_feature.in_channels == 256


def test_runner_trains_and_predicts(toy_data, tmp_path):  # noqa: F811
    """The toy quickstart model with the FPN pixel decoder: a few Runner
    iterations lower the loss, then it predicts panoptic, instance and
    semantic results on the validation images."""
    iters = 8
    cfg = short_run_cfg('panoptic', toy_data, tmp_path, max_iters=iters)
    cfg.model.panoptic_head.pixel_decoder = dict(
        type='m2f_mm.FPNPixelDecoder', norm_cfg=dict(type='GN', num_groups=16))
    init_default_scope(cfg.default_scope)
    runner = Runner.from_cfg(cfg)
    assert isinstance(runner.model.panoptic_head.pixel_decoder, FPNPixelDecoder)
    runner.train()
    losses = train_losses(runner)
    print('FPNPixelDecoder toy losses:', np.round(losses, 3).tolist())
    assert len(losses) == iters and np.isfinite(losses).all()
    assert losses[-3:].mean() < 0.9 * losses[:3].mean(), losses

    val = Config.fromfile(os.path.join(
        REPO, 'configs/quickstart/mask2former_r18_toy-panoptic.py')).val_dataloader
    val.update(batch_size=2, num_workers=0, persistent_workers=False)
    val.dataset.data_root = toy_data
    batch = next(iter(Runner.build_dataloader(val)))
    runner.model.eval()
    with torch.no_grad():
        results = runner.model.test_step(batch)
    assert len(results) == 2
    for r in results:
        h, w = r.ori_shape
        assert r.pred_panoptic_seg.sem_seg.shape == (1, h, w)
        assert r.pred_instances.masks.shape[1:] == (h, w)
        assert len(r.pred_instances.scores) == len(r.pred_instances.labels) > 0
        assert r.pred_sem_seg.sem_seg.shape == (1, h, w)
