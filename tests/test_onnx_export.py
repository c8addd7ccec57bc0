"""ONNX export (m2f_mm/deploy, tools/export_onnx.py, tools/onnx_infer.py):
small R-50-shaped and Swin-shaped MMDetection models and an MMSegmentation
one, random weights, exported once with dynamic batch and H × W at 128 × 128,
then run in onnxruntime at other, non-square sizes and batches against
PyTorch: logits, semantic maps, and panoptic / instance results through the
numpy post-processing against our PyTorch fusion."""
import copy
import json
import os
import sys

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict

from m2f_mm.deploy import (Mask2FormerOnnx, export_onnx, non_standard_domains,
                           read_metadata)
from m2f_mm.deploy.postprocess import INSTANCE_OFFSET, image_mask_logits, postprocess
from m2f_mm.deploy.onnx_export import head_of
from m2f_mm.deploy.runtime import OnnxMask2Former
from m2f_mm.models.heads.fusion import (instance_fusion, panoptic_fusion,
                                        semantic_inference)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tools'))  # demo, export_onnx, onnx_infer
NUM_THINGS, NUM_STUFF = 3, 2
SIZES = [(96, 160), (224, 128)]  # neither is the traced 128 × 128
# iou_thr 0.5, not 0.8: the random models' masks overlap so much that at
# 0.8 no panoptic segment survives, and there would be nothing to compare
TEST_CFG = dict(panoptic_on=True, instance_on=True, semantic_on=True,
                max_per_image=20, object_mask_thr=0.8, iou_thr=0.5,
                filter_low_score=True)
PREPROCESSOR = dict(type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                    std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32)
# ResNet-50's bottleneck stages at 1/8 width; Swin-T's stages at 1/6 width
R50 = dict(type='mmdet.ResNet', depth=50, base_channels=8, num_stages=4,
           out_indices=(0, 1, 2, 3), frozen_stages=-1,
           norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True,
           style='pytorch', init_cfg=None)
SWIN = dict(type='mmdet.SwinTransformer', embed_dims=16, depths=[2, 2, 2, 2],
            num_heads=[1, 2, 4, 8], window_size=7, mlp_ratio=4, qkv_bias=True,
            drop_path_rate=0.0, patch_norm=True, out_indices=(0, 1, 2, 3),
            with_cp=False, convert_weights=False, init_cfg=None)
CHANNELS = dict(r50=[32, 64, 128, 256], swin=[16, 32, 64, 128])


def head_cfg(in_channels, **kwargs):
    return dict(type='m2f_mm.Mask2FormerHead', in_channels=in_channels,
                strides=[4, 8, 16, 32], feat_channels=32, mask_channels=32,
                num_queries=10,
                pixel_decoder=dict(type='m2f_mm.MSDeformAttnPixelDecoder',
                                   num_layers=2, num_heads=4, ffn_dims=64,
                                   norm_cfg=dict(type='GN', num_groups=8)),
                transformer_decoder=dict(num_layers=6, num_heads=4, ffn_dims=64),
                **kwargs)


def det_cfg(backbone):
    return ConfigDict(
        type='m2f_mm.Mask2Former', data_preprocessor=PREPROCESSOR,
        backbone=R50 if backbone == 'r50' else SWIN,
        panoptic_head=head_cfg(CHANNELS[backbone], num_things_classes=NUM_THINGS,
                               num_stuff_classes=NUM_STUFF),
        panoptic_fusion_head=dict(type='m2f_mm.Mask2FormerFusionHead',
                                  num_things_classes=NUM_THINGS,
                                  num_stuff_classes=NUM_STUFF),
        train_cfg=dict(num_points=64),
        test_cfg=TEST_CFG)


def seg_cfg():
    return ConfigDict(
        type='mmseg.EncoderDecoder',
        data_preprocessor=dict(type='mmseg.SegDataPreProcessor',
                               mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
                               pad_val=0, seg_pad_val=255,
                               test_cfg=dict(size_divisor=32)),
        backbone=dict(R50, type='mmseg.ResNet', depth=18, base_channels=16),
        decode_head=head_cfg([16, 32, 64, 128], num_classes=5,
                             train_cfg=dict(num_points=64)),
        train_cfg=dict(), test_cfg=dict(mode='whole'))


def sharpen(model):
    """A randomly initialised decoder maps all queries to about the same
    vector (one class, one mask everywhere), so nothing would be left for
    the fusions to disagree on. Shrink the decoder layers' residual
    branches so that each query keeps its own learnable start, and scale
    the class and mask outputs up, as training does: then queries differ
    in class and mask, and panoptic, instance and semantic maps have
    several segments."""
    decoder = head_of(model).transformer_decoder
    with torch.no_grad():
        for layer in decoder.layers:
            for branch in (layer.cross_attn.out_proj, layer.self_attn.out_proj,
                           layer.linear2):
                branch.weight.mul_(0.1)
        decoder.cls_embed.weight.mul_(20.0)
        decoder.cls_embed.bias.zero_()
        decoder.mask_embed[-1].weight.mul_(8.0)
    return model


def build(kind, seed=0):
    if kind == 'seg':
        from mmseg.registry import MODELS
        cfg = seg_cfg()
    else:
        from mmdet.registry import MODELS
        cfg = det_cfg(kind)
    torch.manual_seed(seed)
    model = MODELS.build(cfg)
    model.init_weights()
    names = [f'c{i}' for i in range(head_of(model).num_classes)]
    model.dataset_meta = dict(classes=names, palette=[(i * 40, 0, 0) for i in range(len(names))])
    return sharpen(model).eval()


@pytest.fixture(scope='module', autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """kind → (model, path to its graph), exported on first use."""
    out, tmp = {}, tmp_path_factory.mktemp('onnx')

    def get(kind):
        if kind not in out:
            model = build(kind)
            path = str(tmp / f'{kind}.onnx')
            export_onnx(model, path, task='semantic', dynamic=True,
                        input_shape=(1, 3, 128, 128))
            out[kind] = model, path
        return out[kind]
    return get


def images(batch, h, w, seed=0):
    """Random RGB uint8 images (B, H, W, 3) with smooth blobs, so the
    masks have structure beyond noise."""
    g = np.random.RandomState(seed)
    small = g.randint(0, 256, (batch, h // 16, w // 16, 3)).astype(np.float32)
    big = F.interpolate(torch.from_numpy(small).permute(0, 3, 1, 2), size=(h, w),
                        mode='bilinear', align_corners=False)
    noise = g.randint(-20, 21, (batch, 3, h, w))
    return (big.numpy() + noise).clip(0, 255).round().astype(np.uint8).transpose(0, 2, 3, 1)


def host_predict(model, rgb):
    """The PyTorch host's own inference: its data preprocessor on BGR
    uint8 images (as mmcv loads them; it pads them), then ``predict``;
    also the last prediction set of the head on the same batch."""
    bgr = [torch.from_numpy(np.ascontiguousarray(im[..., ::-1].transpose(2, 0, 1)))
           for im in rgb]
    metas = [dict(img_shape=im.shape[:2], ori_shape=im.shape[:2], scale_factor=(1.0, 1.0))
             for im in rgb]
    if hasattr(model, 'decode_head'):
        from mmseg.structures import SegDataSample
        samples = [SegDataSample(metainfo=m) for m in metas]
    else:
        from mmdet.structures import DetDataSample
        samples = [DetDataSample(metainfo=m) for m in metas]
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=bgr, data_samples=samples), False)
        all_cls, all_masks = head_of(model)(model.extract_feat(data['inputs']))
        results = model.predict(data['inputs'], data['data_samples'])
    return all_cls[-1], all_masks[-1], results


# ------------------------------------------------------------ the graph
@pytest.mark.parametrize('kind', ['r50', 'swin', 'seg'])
def test_graph_is_standard_onnx(exported, kind):
    model, path = exported(kind)
    graph = onnx.load(path)
    onnx.checker.check_model(graph, full_check=True)
    assert non_standard_domains(graph) == []
    assert {n.domain for n in graph.graph.node} <= {'', 'ai.onnx'}
    ops = {n.op_type for n in graph.graph.node}
    assert 'GridSample' in ops  # deformable attention, no custom op
    assert graph.opset_import[0].version >= 16
    names = [o.name for o in graph.graph.output]
    assert names == ['cls_logits', 'mask_logits', 'semantic']
    dims = [d.dim_param or d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ['batch', 3, 'height', 'width']
    meta = read_metadata(graph)
    assert meta['num_classes'] == head_of(model).num_classes
    assert meta['host'] == ('mmseg' if kind == 'seg' else 'mmdet')
    assert meta['results'] == (['semantic'] if kind == 'seg' else
                               ['panoptic', 'instance', 'semantic'])


# ------------------------------------------------- equal to PyTorch
@pytest.mark.parametrize('batch', [1, 2])
@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('kind', ['r50', 'swin'])
def test_onnxruntime_equals_pytorch(exported, kind, size, batch):
    model, path = exported(kind)
    runner = OnnxMask2Former(path, threads=1)
    rgb = images(batch, *size, seed=batch)
    cls_pt, mask_pt, results_pt = host_predict(model, rgb)
    batch_in, shapes = runner.preprocess(list(rgb))
    outs = runner(batch_in)
    assert outs['mask_logits'].shape == (batch, 10, size[0] // 4, size[1] // 4)
    assert np.abs(outs['cls_logits'] - cls_pt.numpy()).max() < 1e-4
    assert np.abs(outs['mask_logits'] - mask_pt.numpy()).max() < 1e-4

    panoptic_segments = 0
    for i, pt in enumerate(results_pt):
        # the graph's own semantic output and the numpy one, both = PyTorch's
        sem_pt = pt.pred_sem_seg.sem_seg[0].numpy()
        assert np.array_equal(outs['semantic'][i], sem_pt)
        res = runner.results(outs, i, shapes[i])
        assert np.array_equal(res['semantic'], sem_pt)

        pan_pt = pt.pred_panoptic_seg.sem_seg[0].numpy()
        assert_panoptic_equal(res['panoptic'], pan_pt)
        panoptic_segments += len(np.unique(pan_pt)) - 1
        assert_instances_equal(res['instance'], pt.pred_instances,
                               image_mask_logits(mask_pt[i].numpy()))
    assert panoptic_segments >= batch  # the comparison had something to compare


@pytest.mark.parametrize('kind', ['r50', 'swin'])
def test_graph_equals_pytorch_plain_paths(exported, kind):
    """The graph is the plain paths traced: equal to them to rounding."""
    from m2f_mm.ops import fast_paths
    model, path = exported(kind)
    runner = OnnxMask2Former(path, threads=1)
    batch, _ = runner.preprocess(list(images(2, 224, 128, seed=4)))
    outs = runner(batch)
    with torch.no_grad(), fast_paths(False):
        cls, mask, sem = Mask2FormerOnnx(model, 'semantic')(torch.from_numpy(batch))
    assert np.abs(outs['cls_logits'] - cls.numpy()).max() < 2e-5
    assert np.abs(outs['mask_logits'] - mask.numpy()).max() < 2e-5
    assert np.array_equal(outs['semantic'], sem.numpy())


def assert_panoptic_equal(got, expected):
    """Identical maps, or at most 0.01% of pixels apart: where two queries'
    score × mask probability tie to float rounding (onnxruntime and PyTorch
    differ by ~1e-6), the per-pixel argmax may pick either."""
    assert got.shape == expected.shape and got.dtype == expected.dtype
    differ = (got != expected).mean()
    assert differ <= 1e-4, f'{100 * differ:.4f}% of panoptic pixels differ'


def assert_instances_equal(got, expected, logits=None):
    """Same (label, box, mask) set, scores to 1e-5; PyTorch's top-k leaves
    the order open, so both are sorted first. A mask pixel may flip only
    where a query's mask logit (``logits``, Q×H×W, PyTorch's) is 0 to
    within the logits' tolerance (1e-4), i.e. at the binary threshold, and
    on at most 0.01% of the pixels; that instance's score moves with it."""
    exp = {k: expected.get(k).numpy() for k in ('labels', 'scores', 'bboxes', 'masks')}
    assert len(got['labels']) == len(exp['labels'])

    def rows(x):  # N×... → N×(rest), also for N = 0
        return x.reshape(len(x), int(np.prod(x.shape[1:])))

    def order(r):  # by label, a fingerprint of the mask, then score
        flat = rows(r['masks'])
        weights = np.random.RandomState(0).rand(flat.shape[1])
        return np.lexsort([r['scores'], flat @ weights, r['labels']])
    a, b = order(got), order(exp)
    assert np.array_equal(got['labels'][a], exp['labels'][b])
    flips = got['masks'][a] != exp['masks'][b]  # N×H×W
    if flips.any():
        assert flips.mean() <= 1e-4, f'{100 * flips.mean():.4f}% of mask pixels differ'
        assert logits is not None and (np.abs(logits).min(0)[flips.any(0)] < 1e-4).all()
    same = ~rows(flips).any(1)
    assert np.array_equal(got['bboxes'][a][same], exp['bboxes'][b][same])
    # a flipped pixel moves the mean probability inside its mask
    area = np.maximum(rows(exp['masks'][b]).sum(1), 1)
    moved = rows(flips).sum(1) / area
    tolerance = 1e-5 + 2 * moved * exp['scores'][b]
    assert (np.abs(got['scores'][a] - exp['scores'][b]) <= tolerance).all()


@pytest.mark.parametrize('size', SIZES)
def test_mmseg_host_exports_and_matches(exported, size):
    model, path = exported('seg')
    runner = OnnxMask2Former(path, threads=1)
    rgb = images(2, *size, seed=3)
    cls_pt, mask_pt, results_pt = host_predict(model, rgb)
    outs = runner(runner.preprocess(list(rgb))[0])
    assert np.abs(outs['cls_logits'] - cls_pt.numpy()).max() < 1e-4
    assert np.abs(outs['mask_logits'] - mask_pt.numpy()).max() < 1e-4
    for i, pt in enumerate(results_pt):
        sem_pt = pt.pred_sem_seg.data[0].numpy()
        assert len(np.unique(sem_pt)) > 1
        assert np.array_equal(outs['semantic'][i], sem_pt)
        assert np.array_equal(runner.results(outs, i, size)['semantic'], sem_pt)


@pytest.mark.parametrize('kind', ['r50', 'seg'])
def test_padded_images_match_pytorch(exported, kind):
    """Images whose sides are not multiples of 32, alone and batched with a
    larger one: the runner pads them as the PyTorch preprocessors do."""
    model, path = exported(kind)
    runner = OnnxMask2Former(path, threads=1)
    small, large = images(1, 90, 150, seed=5)[0], images(1, 100, 120, seed=6)[0]
    # MMSeg's preprocessor refuses images of different sizes in a batch
    for batch in ([small], [small, large])[:1 if kind == 'seg' else 2]:
        cls_pt, mask_pt, results_pt = host_predict(model, batch)
        padded, shapes = runner.preprocess(batch)
        assert padded.shape[-2:] == ((96, 160) if len(batch) == 1 else (128, 160))
        outs = runner(padded)
        assert np.abs(outs['mask_logits'] - mask_pt.numpy()).max() < 1e-4
        for i, pt in enumerate(results_pt):
            res = runner.results(outs, i, shapes[i])
            if kind == 'seg':
                assert np.array_equal(res['semantic'], pt.pred_sem_seg.data[0].numpy())
                continue
            assert np.array_equal(res['semantic'], pt.pred_sem_seg.sem_seg[0].numpy())
            assert_panoptic_equal(res['panoptic'], pt.pred_panoptic_seg.sem_seg[0].numpy())
            logits = image_mask_logits(mask_pt[i].numpy(), img_shape=shapes[i])
            assert_instances_equal(res['instance'], pt.pred_instances, logits)


def test_fixed_shape_export_refuses_other_sizes(tmp_path):
    model = build('r50', seed=1)
    path = str(tmp_path / 'fixed.onnx')
    meta = export_onnx(model, path, task='panoptic', input_shape=(1, 3, 64, 96))
    assert meta['results'] == ['panoptic', 'instance', 'semantic']
    graph = onnx.load(path)
    assert [o.name for o in graph.graph.output] == ['cls_logits', 'mask_logits']
    dims = [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 64, 96]
    runner = OnnxMask2Former(path, threads=1)
    rgb = images(1, 64, 96)
    outs = runner(runner.preprocess(list(rgb))[0])
    cls_pt, mask_pt, _ = host_predict(model, rgb)
    assert np.abs(outs['mask_logits'] - mask_pt.numpy()).max() < 1e-4
    with pytest.raises(ValueError, match='--dynamic'):
        runner.preprocess(list(images(1, 128, 96)))


def test_export_rejects_bad_arguments(tmp_path):
    model = build('r50', seed=2)
    with pytest.raises(ValueError, match='GridSample'):
        export_onnx(model, str(tmp_path / 'a.onnx'), opset=15)
    with pytest.raises(ValueError, match='multiples of 32'):
        export_onnx(model, str(tmp_path / 'a.onnx'), input_shape=(1, 3, 100, 96))
    with pytest.raises(ValueError, match='task'):
        Mask2FormerOnnx(model, task='depth')


# ------------------------------------- numpy post-processing alone
def torch_results(cls, masks, pad, img, ori, host='mmdet'):
    """What the PyTorch hosts do with one image's logits (``masks`` at 1/4
    of ``pad``): MMDet's head + fusion head, or (semantic only) MMSeg's
    head + EncoderDecoder's crop and resize of the class scores."""
    from mmdet.structures import DetDataSample
    from m2f_mm.models.heads import hosts
    from m2f_mm.models.heads.fusion import Mask2FormerFusionHead
    meta = dict(batch_input_shape=pad, pad_shape=pad, img_shape=img, ori_shape=ori)
    if host == 'mmseg':
        scores = hosts.mmseg_seg_logits(cls[None], masks[None], [meta], None)
        scores = scores[:, :, :img[0], :img[1]]
        return None, None, F.interpolate(scores, size=ori, mode='bilinear',
                                         align_corners=False)[0].argmax(0).numpy()
    sample = DetDataSample(metainfo=meta)
    cls_b, masks_b = hosts.mmdet_predictions(cls[None], masks[None], [sample])
    fusion = Mask2FormerFusionHead(NUM_THINGS, NUM_STUFF, test_cfg=dict(
        TEST_CFG, object_mask_thr=0.8, iou_thr=0.8))
    out = fusion.predict(cls_b, masks_b, [sample], rescale=True)[0]
    return (out['pan_results'].sem_seg[0].numpy(), out['ins_results'],
            out['sem_results'].sem_seg[0].numpy())


@pytest.mark.parametrize('seed', range(6))
@pytest.mark.parametrize('shapes', [((96, 160), (96, 160), (96, 160)),
                                    ((96, 160), (90, 150), (90, 150)),
                                    ((64, 96), (60, 90), (120, 180)),
                                    ((128, 128), (100, 128), (75, 96))])
def test_postprocess_equals_pytorch_fusion(seed, shapes):
    pad, img, ori = shapes
    g = torch.Generator().manual_seed(seed)
    q, k = 12, NUM_THINGS + NUM_STUFF
    cls = torch.randn(q, k + 1, generator=g) * 4
    # blobby masks: low-resolution noise, upsampled
    masks = F.interpolate(torch.randn(1, q, 4, 6, generator=g) * 6,
                          size=(pad[0] // 4, pad[1] // 4), mode='bilinear')[0]
    host = 'mmseg' if seed % 2 else 'mmdet'
    pan_pt, ins_pt, sem_pt = torch_results(cls, masks, pad, img, ori, host)
    res = postprocess(cls.numpy(), masks.numpy(), k, NUM_THINGS,
                      tasks=('panoptic', 'instance', 'semantic'), pad_shape=pad,
                      img_shape=img, ori_shape=ori, filter_low_score=True,
                      max_per_image=20, host=host)
    assert res['panoptic'].shape == tuple(ori)
    if host == 'mmdet':
        assert_panoptic_equal(res['panoptic'], pan_pt)
        assert_instances_equal(res['instance'], ins_pt)
    assert np.array_equal(res['semantic'], sem_pt)


def test_postprocess_uses_mmdets_panoptic_encoding():
    from m2f_mm.models.heads import fusion
    assert INSTANCE_OFFSET == fusion.INSTANCE_OFFSET


def test_postprocess_cases():
    q, k = 4, NUM_THINGS + NUM_STUFF
    cls = np.full((q, k + 1), -10.0, np.float32)
    masks = np.full((q, 8, 8), -10.0, np.float32)
    # nothing confident: all void
    res = postprocess(cls, masks, k, NUM_THINGS, tasks=('panoptic',))
    assert (res['panoptic'] == k).all() and res['panoptic'].shape == (32, 32)
    # two things and one stuff segment; instance ids in query order
    cls[0, 1] = cls[1, 1] = cls[2, 4] = 10.0
    masks[0, :4, :4] = masks[1, 4:, 4:] = masks[2, :4, 4:] = 10.0
    pan = postprocess(cls, masks, k, NUM_THINGS, tasks=('panoptic',))['panoptic']
    assert pan[0, 0] == 1 + 1000 and pan[-1, -1] == 1 + 2000 and pan[0, -1] == 4
    ins = postprocess(cls, masks, k, NUM_THINGS, tasks=('instance',),
                      max_per_image=2)['instance']
    assert ins['labels'].tolist() == [1, 1]  # stuff never among instances
    assert ins['bboxes'][0].tolist() in ([0, 0, 16, 16], [16, 16, 32, 32])
    # the top pair is stuff: no instances, as in PyTorch
    cls[:2, 1] = 2.0  # things now clearly below the stuff query's score
    ins = postprocess(cls, masks, k, NUM_THINGS, tasks=('instance',),
                      max_per_image=1)['instance']
    ins_pt = instance_fusion(torch.from_numpy(cls), torch.from_numpy(
        masks).repeat_interleave(4, 1).repeat_interleave(4, 2), k, NUM_THINGS, 1)
    assert len(ins_pt) == 0 and ins['masks'].shape == (0, 32, 32)
    assert_instances_equal(ins, ins_pt)
    with pytest.raises(ValueError, match='unknown tasks'):
        postprocess(cls, masks, k, NUM_THINGS, tasks=('depth',))


# ------------------------------------------------------------ the tools
@pytest.fixture(scope='module')
def quickstart_export(tmp_path_factory):
    """The quickstart model with random weights (sharpened) saved as a
    checkpoint, exported by tools/export_onnx.py, and a few toy images."""
    from make_toy_dataset import make_toy_dataset
    import export_onnx as export_tool
    from m2f_mm.deploy import build_model_from_config
    tmp = tmp_path_factory.mktemp('quickstart')
    make_toy_dataset(str(tmp / 'toy'), num_train=1, num_val=3, size=128, seed=0)
    # the quickstart config, with the panoptic iou_thr of TEST_CFG
    config = str(tmp / 'quickstart_iou05.py')
    with open(config, 'w') as f:
        f.write(f"_base_ = '{REPO}/configs/quickstart/mask2former_r18_toy-panoptic.py'\n"
                "model = dict(test_cfg=dict(iou_thr=0.5))\n")
    torch.manual_seed(0)
    model, cfg = build_model_from_config(config)
    sharpen(model)
    ckpt = str(tmp / 'random.pth')
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': dict(cfg.metainfo)}}, ckpt)
    onnx_path = str(tmp / 'quickstart.onnx')
    export_tool.main([config, ckpt, '--out', onnx_path, '--dynamic'])
    return config, ckpt, onnx_path, str(tmp / 'toy' / 'val')


def test_onnx_infer_writes_what_demo_writes(quickstart_export, tmp_path):
    """Same files, same predictions (JSON, panoptic PNG) and the same
    overlays. The overlays are compared with instance drawing off
    (``--score-thr 1``): MMDet's visualizer gives each drawn instance a
    random colour jitter, and blends overlapping instances in list order,
    which PyTorch's top-k leaves open; so two demo.py runs differ there."""
    import demo
    import onnx_infer
    config, ckpt, onnx_path, images_dir = quickstart_export
    demo.main([images_dir, config, ckpt, '--out-dir', str(tmp_path / 'pt'),
               '--score-thr', '1'])
    onnx_infer.main([images_dir, onnx_path, '--out-dir', str(tmp_path / 'ort'),
                     '--score-thr', '1'])
    for sub in ('vis', 'preds'):
        names = sorted(os.listdir(tmp_path / 'pt' / sub))
        assert names and names == sorted(os.listdir(tmp_path / 'ort' / sub))
    segments = 0
    for name in sorted(os.listdir(tmp_path / 'pt' / 'preds')):
        a_path, b_path = tmp_path / 'pt' / 'preds' / name, tmp_path / 'ort' / 'preds' / name
        if name.endswith('.png'):  # the panoptic map as RGB ids
            a, b = _png(a_path), _png(b_path)
            assert (a != b).any(-1).mean() <= 1e-4
            segments += len(np.unique(a.reshape(-1, 3), axis=0)) - 1
            continue
        a, b = json.load(open(a_path)), json.load(open(b_path))
        ia, ib = _sorted_instances(a), _sorted_instances(b)
        assert [x[0] for x in ia] == [x[0] for x in ib]  # labels, boxes, masks
        np.testing.assert_allclose([x[1] for x in ia], [x[1] for x in ib], atol=1e-5)
    assert segments > 0
    for name in os.listdir(tmp_path / 'pt' / 'vis'):
        a, b = _png(tmp_path / 'pt' / 'vis' / name), _png(tmp_path / 'ort' / 'vis' / name)
        assert np.array_equal(a, b)


def _png(path):
    from PIL import Image
    return np.asarray(Image.open(path).convert('RGB'))


def _sorted_instances(pred):
    """((label, box, mask RLE), score) per instance, in a fixed order."""
    items = [((l, tuple(b), m['counts']), s) for l, b, m, s in
             zip(pred['labels'], pred['bboxes'], pred['masks'], pred['scores'])]
    return sorted(items, key=lambda x: x[0])


def test_export_tool_check_flag(quickstart_export, capsys):
    import export_onnx as export_tool
    config, ckpt, onnx_path, _ = quickstart_export
    out = onnx_path.replace('.onnx', '_fixed.onnx')
    export_tool.main([config, ckpt, '--out', out, '--shape', '64', '96', '--check'])
    printed = capsys.readouterr().out
    assert 'fixed 1x3x64x96' in printed and 'cls_logits' in printed
    numbers = printed.split('PyTorch at ')[1].split(':', 1)[1].split(',')
    diffs = [float(t.split()[-1]) for t in numbers]
    assert max(diffs) < 1e-4


def test_onnx_infer_semantic_with_resize_writes_what_demo_writes(tmp_path):
    """An MMSeg config whose test pipeline resizes (ADE20K's, shrunk):
    the semantic scores are resized back to the original image in both,
    and the label PNGs and overlays match."""
    import demo
    import export_onnx as export_tool
    import onnx_infer
    from mmseg.datasets import ADE20KDataset
    from PIL import Image
    from m2f_mm.deploy import build_model_from_config
    config = str(tmp_path / 'tiny_ade.py')
    with open(config, 'w') as f:
        f.write(f"_base_ = '{REPO}/configs/mask2former_r50_ade20k-semantic.py'\n"
                "model = dict(backbone=dict(depth=18, init_cfg=None), decode_head=dict(\n"
                "    in_channels=[64, 128, 256, 512], feat_channels=32, mask_channels=32,\n"
                "    num_queries=10, pixel_decoder=dict(num_layers=1, num_heads=4,\n"
                "    ffn_dims=64, norm_cfg=dict(type='GN', num_groups=8)),\n"
                "    transformer_decoder=dict(num_layers=3, num_heads=4, ffn_dims=64)))\n")
    torch.manual_seed(0)
    model, cfg = build_model_from_config(config)
    sharpen(model)
    ckpt = str(tmp_path / 'tiny_ade.pth')
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': dict(ADE20KDataset.METAINFO)}}, ckpt)
    onnx_path = str(tmp_path / 'tiny_ade.onnx')
    export_tool.main([config, ckpt, '--out', onnx_path, '--dynamic'])
    assert read_metadata(onnx.load(onnx_path))['task'] == 'semantic'
    image = str(tmp_path / 'street.png')
    Image.fromarray(images(1, 90, 150, seed=7)[0]).save(image)  # resized to 512×853
    demo.main([image, config, ckpt, '--out-dir', str(tmp_path / 'pt')])
    onnx_infer.main([image, onnx_path, '--out-dir', str(tmp_path / 'ort')])
    for sub in ('pred', 'vis'):
        names = os.listdir(tmp_path / 'pt' / sub)
        assert names and sorted(names) == sorted(os.listdir(tmp_path / 'ort' / sub))
        for name in names:
            a, b = _png(tmp_path / 'pt' / sub / name), _png(tmp_path / 'ort' / sub / name)
            assert a.shape[:2] == (90, 150) and np.array_equal(a, b)
            if sub == 'pred':
                assert len(np.unique(a)) > 1


def test_benchmark_onnx_report():
    """tools/benchmark.py --onnx on the small model: a table with both
    rows, their ratios and logits that agree (no timing asserted)."""
    import argparse
    from bench.onnx_report import onnx_report
    args = argparse.Namespace(small=True, size=64, infer_batch=1, opset=17, threads=1,
                              repeats=1)
    report = onnx_report(args)
    assert '| network (image → logits) |' in report
    assert '| + panoptic and instance results |' in report
    assert report.count('×') >= 3
    diff = float(report.split('max |Δ| of the logits ')[1].split('.\n')[0])
    assert diff < 1e-4
