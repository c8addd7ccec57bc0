"""Hugging Face Mask2Former checkpoints in our model, tested against
``transformers`` itself: random-weight models at small widths (a Swin and a
ResNet backbone) are saved with ``save_pretrained``, converted with
``tools/convert_checkpoint.py hf``, built from the written config and
compared: every prediction set's logits, the semantic map of HF's
post-processing, and its panoptic and instance results on the same logits
(the differences of algorithm are listed in the README and pinned below)."""
import os
import sys

import pytest
import torch

transformers = pytest.importorskip('transformers')
from transformers import (Mask2FormerConfig, Mask2FormerForUniversalSegmentation,  # noqa: E402
                          Mask2FormerImageProcessor, ResNetConfig, SwinConfig)
from transformers.models.mask2former.modeling_mask2former import (  # noqa: E402
    Mask2FormerForUniversalSegmentationOutput)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tools'))
NUM_CLASSES, NUM_THINGS, QUERIES = 5, 3, 10
STAGES = ['stage1', 'stage2', 'stage3', 'stage4']
SIZE = 384  # HF's post-processing first resizes masks to 384x384


def hf_model(backbone: str, seed: int = 0, diverse: bool = False
             ) -> Mask2FormerForUniversalSegmentation:
    """A small random Mask2Former whose every float entry (norms, BN
    statistics, embeddings included) is random, with confident classes.

    ``diverse``: the decoder layers' output projections are scaled down so
    that the queries keep their identity through the layers (as in trained
    models; random layers make all queries alike) and the masks are
    sharpened: several classes and segments for the post-processing tests.
    """
    if backbone == 'swin':
        bb = SwinConfig(embed_dim=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8],
                        window_size=7, image_size=224, out_features=STAGES)
    else:
        bb = ResNetConfig(embedding_size=8, hidden_sizes=[32, 64, 128, 256],
                          depths=[3, 4, 6, 3], layer_type='bottleneck', out_features=STAGES)
    names = {i: f'cls{i}' for i in range(NUM_CLASSES)}
    cfg = Mask2FormerConfig(
        backbone_config=bb, feature_size=32, mask_feature_size=32, hidden_dim=32,
        encoder_feedforward_dim=64, dim_feedforward=64, num_attention_heads=4,
        num_queries=QUERIES, encoder_layers=6, decoder_layers=10, id2label=names,
        label2id={v: k for k, v in names.items()}, no_object_weight=0.1)
    model = Mask2FormerForUniversalSegmentation(cfg).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.state_dict().items():
            if not p.is_floating_point() or name.endswith('empty_weight'):
                continue
            noise = torch.randn(p.shape, generator=g)
            if name.endswith('running_var'):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif p.dim() >= 2:
                p.copy_(noise / p[0].numel() ** 0.5)
            elif 'norm' in name and name.endswith('weight'):
                p.copy_(1 + 0.1 * noise)
            else:
                p.copy_(0.1 * noise)
        model.class_predictor.weight.mul_(20)  # confident, as trained models are
        if diverse:
            tm = model.model.transformer_module
            tm.queries_features.weight.copy_(
                torch.randn(tm.queries_features.weight.shape, generator=g))
            for layer in tm.decoder.layers:
                for lin in (layer.fc2, layer.self_attn.out_proj, layer.cross_attn.out_proj):
                    lin.weight.mul_(0.03)
            tm.decoder.mask_predictor.mask_embedder.layers[2].layers[0].weight.mul_(8)
    return model


def run_tool(*args):
    from convert_checkpoint import main
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        return str(e.code)
    return None


def build(cfg_path, ckpt):
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import load_checkpoint
    import m2f_mm  # noqa: F401
    cfg = Config.fromfile(str(cfg_path))
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    load_checkpoint(model, str(ckpt), map_location='cpu', strict=True)
    return cfg, model.eval()


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    """Both HF models, saved; name -> (model, folder)."""
    root = tmp_path_factory.mktemp('hf')
    out = {}
    for kind in ('swin', 'resnet', 'swin-diverse'):
        model = hf_model(kind.split('-')[0], diverse=kind.endswith('diverse'))
        model.save_pretrained(root / kind)
        out[kind] = (model, root / kind)
    return out


@pytest.fixture(scope='module')
def diverse(saved, tmp_path_factory):
    """The diverse Swin model converted for each host, and its logits at
    384x384 (the size HF's post-processing works at)."""
    root = tmp_path_factory.mktemp('hf-converted')
    models = {d: convert(saved, 'swin-diverse', d, root)[1]
              for d in ('coco-panoptic', 'coco-instance', 'ade20k-semantic')}
    x = image(seed=3)
    with torch.no_grad():
        cls, masks = models['coco-panoptic'].panoptic_head(
            models['coco-panoptic'].backbone(x))
    return models, x, cls[-1], masks[-1]


def convert(saved, kind, dataset, tmp_path):
    dst, cfg = tmp_path / f'{kind}-{dataset}.pth', tmp_path / f'{kind}-{dataset}.py'
    args = ['hf', saved[kind][1], dst, '--config-out', cfg, '--dataset', dataset]
    if dataset == 'coco-panoptic':
        args += ['--num-things', NUM_THINGS]
    err = run_tool(*args)
    assert err is None, err
    return build(cfg, dst)


def image(seed=1, h=SIZE, w=SIZE):
    return torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize('kind,hw', [('swin', (96, 128)), ('resnet', (96, 128))])
def test_all_prediction_sets_match_hf(saved, kind, hw, tmp_path):
    hf, _ = saved[kind]
    cfg, ours = convert(saved, kind, 'coco-panoptic', tmp_path)
    x = image(h=hw[0], w=hw[1])
    with torch.no_grad():
        out = hf(pixel_values=x, output_auxiliary_logits=True)
        cls, masks = ours.panoptic_head(ours.backbone(x))
    ref_cls = [a['class_queries_logits'] for a in out.auxiliary_logits] + \
        [out.class_queries_logits]
    ref_masks = [a['masks_queries_logits'] for a in out.auxiliary_logits] + \
        [out.masks_queries_logits]
    assert len(cls) == len(ref_cls) == 10
    worst_cls = worst_mask = 0.0
    for s in range(10):
        d_cls = (cls[s] - ref_cls[s]).abs().max().item()
        d_mask = (masks[s] - ref_masks[s]).abs().max().item()
        assert d_cls <= 1e-4 and d_mask <= 1e-4, (s, d_cls, d_mask)
        worst_cls, worst_mask = max(worst_cls, d_cls), max(worst_mask, d_mask)
    print(f'\nHF {kind}: max abs difference over 10 sets: class logits {worst_cls:.2e} '
          f'(span {ref_cls[-1].min():.0f}..{ref_cls[-1].max():.0f}), mask logits '
          f'{worst_mask:.2e} (span {ref_masks[-1].min():.1f}..{ref_masks[-1].max():.1f})')
    if kind == 'swin':
        # the tolerance is meaningful: PatchMerging's norm left in HF's
        # channel order moves the outputs far beyond it
        state = ours.state_dict()
        key = 'backbone.stages.0.downsample.norm.weight'
        hf_norm = hf.state_dict()['model.pixel_level_module.encoder.swin.encoder.'
                                  'layers.0.downsample.norm.weight']
        state[key] = hf_norm
        ours.load_state_dict(state)
        with torch.no_grad():
            _, bad = ours.panoptic_head(ours.backbone(x))
        assert (bad[-1] - ref_masks[-1]).abs().max() > 1e-2
    # classes and names come from config.json
    assert cfg.class_names == [f'cls{i}' for i in range(NUM_CLASSES)]
    assert cfg.model.panoptic_head.num_queries == QUERIES


def test_written_swin_config_states_the_architecture(saved, tmp_path):
    cfg, _ = convert(saved, 'swin', 'coco-panoptic', tmp_path)
    bb, head = cfg.model.backbone, cfg.model.panoptic_head
    assert (bb.type, bb.embed_dims, list(bb.depths), list(bb.num_heads)) == \
        ('SwinTransformer', 16, [2, 2, 2, 2], [1, 2, 4, 8])
    assert (bb.window_size, bb.pretrain_img_size, bb.init_cfg) == (7, 224, None)
    assert (head.num_things_classes, head.num_stuff_classes) == (NUM_THINGS, 2)
    meta = cfg.test_dataloader.dataset.metainfo
    assert list(meta['thing_classes']) == ['cls0', 'cls1', 'cls2']
    assert list(meta['stuff_classes']) == ['cls3', 'cls4']
    assert head.no_object_weight == pytest.approx(0.1)


def _samples(kind):
    meta = dict(img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE), pad_shape=(SIZE, SIZE),
                batch_input_shape=(SIZE, SIZE), scale_factor=(1.0, 1.0))
    if kind == 'det':
        from mmdet.structures import DetDataSample
        return [DetDataSample(metainfo=meta)]
    from mmseg.structures import SegDataSample
    return [SegDataSample(metainfo=meta)]


def _hf_outputs(cls, masks):
    return Mask2FormerForUniversalSegmentationOutput(class_queries_logits=cls,
                                                     masks_queries_logits=masks)


def crafted_logits(seed, h=SIZE // 4, w=SIZE // 4):
    """Logits of a trained-looking prediction at 1/4 of 384x384: every
    query an ellipse of its own (with noisy edges) and a confident class,
    some of them no-object; things, stuff and overlaps."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                            torch.arange(w, dtype=torch.float32), indexing='ij')
    masks = torch.empty(1, QUERIES, h, w)
    cls = torch.randn(1, QUERIES, NUM_CLASSES + 1, generator=g)
    for q in range(QUERIES):
        cy, cx, ry, rx = (torch.rand(4, generator=g) * torch.tensor([h, w, 30, 30])
                          + torch.tensor([0, 0, 8, 8])).tolist()
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        masks[0, q] = torch.where(inside, 4.0, -4.0) + \
            1.5 * torch.randn(h, w, generator=g)
        label = q % (NUM_CLASSES + 1)  # every class, and no-object, appears
        cls[0, q, label] += 4 + 4 * torch.rand(1, generator=g).item()
    return cls, masks


def _upsampled(masks):
    return torch.nn.functional.interpolate(masks, size=(SIZE, SIZE), mode='bilinear',
                                           align_corners=False)


def test_semantic_map_identical_to_hf(diverse):
    """MMSeg host (EncoderDecoder.predict) vs HF's
    post_process_semantic_segmentation on the same logits, at 384x384 (HF
    resizes mask logits to 384x384 whatever the input size)."""
    models, x, cls, masks = diverse
    seg_model = models['ade20k-semantic']
    with torch.no_grad():
        pred = seg_model.predict(x, _samples('seg'))[0].pred_sem_seg.data[0]
        s_cls, s_masks = seg_model.decode_head(seg_model.backbone(x))
    # the semantic model is the same network under MMSeg's prefix
    assert torch.equal(s_cls[-1], cls) and torch.equal(s_masks[-1], masks)
    ref = Mask2FormerImageProcessor().post_process_semantic_segmentation(
        _hf_outputs(cls, masks), target_sizes=[(SIZE, SIZE)])[0]
    assert pred.shape == ref.shape == (SIZE, SIZE)
    assert len(torch.unique(ref)) >= 2, 'the case should have several classes'
    assert torch.equal(pred.long(), ref.long())


def _canonical_panoptic(pan):
    """Segment ids renumbered by their first pixel (void included), so two
    maps compare equal when they make the same partition."""
    _, inv = torch.unique(pan.flatten(), return_inverse=True)
    first = torch.full((int(inv.max()) + 1,), inv.numel()).scatter_reduce(
        0, inv, torch.arange(inv.numel()), 'amin')
    return torch.argsort(torch.argsort(first))[inv].view(pan.shape)


def _ours_panoptic(model, x, filter_low_score, logits=None):
    """Our panoptic map: the MMDet host's predict on ``x``, or, with
    ``logits``, the fusion head on them (upsampled as the head does)."""
    model.panoptic_fusion_head.test_cfg['filter_low_score'] = filter_low_score
    with torch.no_grad():
        if logits is None:
            res = model.predict(x, _samples('det'), rescale=False)[0]
            pan = res.pred_panoptic_seg.sem_seg[0].long()
        else:
            res = model.panoptic_fusion_head.predict(
                logits[0], _upsampled(logits[1]), _samples('det'), rescale=False)[0]
            pan = res['pan_results'].sem_seg[0].long()
    labels = pan % 1000
    labels[labels == NUM_CLASSES] = -1
    return labels, pan


def _hf_panoptic(cls, masks, **kwargs):
    out = Mask2FormerImageProcessor().post_process_panoptic_segmentation(
        _hf_outputs(cls, masks), threshold=0.8,
        label_ids_to_fuse=set(range(NUM_THINGS, NUM_CLASSES)), **kwargs)[0]
    seg = out['segmentation'].long()
    labels = torch.full_like(seg, -1)
    for info in out['segments_info']:
        labels[seg == info['id']] = info['label_id']
    return labels, seg


@pytest.mark.parametrize('source', ['model', 'crafted'])
def test_panoptic_matches_hf_post_processing(diverse, source):
    """Same logits through our fusion (the MMDet host's predict on the
    converted model's own logits, or the fusion head on crafted logits with
    many segments) and HF's post_process_panoptic_segmentation (threshold
    0.8 and stuff classes fused, as the original): identical segments and
    labels once our filter of pixels whose own mask probability is < 0.5
    (the original's, on in our configs) is off; with it on, exactly those
    pixels become void."""
    models, x, cls, masks = diverse
    ours = models['coco-panoptic']
    logits = None if source == 'model' else crafted_logits(seed=11)
    if logits is not None:
        cls, masks = logits
    hf_labels, hf_seg = _hf_panoptic(cls, masks)
    labels, pan = _ours_panoptic(ours, x, False, logits)
    segments = len(torch.unique(hf_seg)) - int((hf_seg == 0).any())
    assert segments >= (1 if source == 'model' else 4)
    assert torch.equal(labels, hf_labels)
    assert torch.equal(_canonical_panoptic(pan), _canonical_panoptic(hf_seg))
    # with the original's filter: void where the winning query's own
    # probability is < 0.5, nothing else changes
    filtered, _ = _ours_panoptic(ours, x, True, logits)
    scores, labels_q = cls[0].softmax(-1).max(-1)
    keep = (scores > 0.8) & (labels_q != NUM_CLASSES)
    probs = _upsampled(masks)[0, keep].sigmoid()
    winner = (scores[keep, None, None] * probs).argmax(0)
    low = probs.gather(0, winner[None])[0] < 0.5
    expected = hf_labels.clone()
    expected[low] = -1
    assert torch.equal(filtered, expected)
    if source == 'crafted':
        assert (low & (hf_labels >= 0)).any(), 'the case should exercise the filter'


def _fuse_both(won_by_other, prob, score):
    """A 1x10 image: query 0 (stuff class 3, class score ``score``) with mask
    probabilities ``prob`` (10 values), query 1 (class 4, certain) taking
    the pixels ``won_by_other``. Returns the pixels each fusion gives query
    0: ours, and HF's ``compute_segments`` (its algorithm without the 384
    resize)."""
    # the same function in the torchvision and the PIL processor
    from transformers.models.mask2former.image_processing_pil_mask2former import \
        compute_segments
    from m2f_mm.models.heads.fusion import panoptic_fusion
    probs = torch.stack([torch.tensor(prob), torch.full((10,), 1e-4)])
    probs[1, won_by_other] = 1 - 1e-4
    logit = torch.logit(probs.double()).float()[:, None]  # 2x1x10
    cls = torch.full((2, NUM_CLASSES + 1), -30.0)
    cls[0, 3], cls[0, -1] = 0.0, float(torch.log(torch.tensor((1 - score) / score)))
    cls[1, 4] = 30.0
    ours = panoptic_fusion(cls, logit, NUM_CLASSES, NUM_THINGS, 0.0, 0.8)
    scores, labels = cls.softmax(-1).max(-1)
    seg, info = compute_segments(logit.sigmoid(), scores, labels, 0.5, 0.8, {3, 4})
    hf = torch.zeros_like(seg, dtype=torch.bool)
    for s in info:
        if s['label_id'] == 3:
            hf |= seg == s['id']
    return int((ours == 3).sum()), int(hf.sum())


def test_panoptic_differences_from_hf_are_the_named_ones():
    """README, "Hugging Face post-processing": HF measures a segment's own
    area on its mask weighted by the class score (score·prob ≥ 0.5); the
    original and we measure the mask itself (prob ≥ 0.5)."""
    # agreement: certain class, 9 of 10 own pixels won
    assert _fuse_both([9], [0.9] * 10, 0.999) == (9, 9)
    # HF keeps what we drop: 4 pixels at prob 0.52 are ours (own 10, won 7:
    # 0.7 < 0.8) but not HF's at score 0.9 (0.47 < 0.5: own 6, won 7)
    assert _fuse_both([7, 8, 9], [0.9] * 6 + [0.52] * 4, 0.9) == (0, 7)
    # HF drops what we keep: prob 0.6 at score 0.82 weighs 0.49, so HF's own
    # area is empty; ours is 10 pixels, 8 of them won (0.8 ≥ 0.8)
    assert _fuse_both([8, 9], [0.6] * 10, 0.82) == (8, 0)


@pytest.mark.parametrize('source', ['model', 'crafted'])
def test_instance_results_match_hf_post_processing(diverse, source):
    """An instance model (all classes things): HF's top-(num_queries) pairs
    with threshold 0 vs ours with max_per_image = num_queries: the same
    (label, mask, score) for every result whose mask is not empty."""
    models, _, cls, masks = diverse
    ours = models['coco-instance']
    ours.panoptic_fusion_head.test_cfg.update(max_per_image=QUERIES, instance_on=True,
                                               panoptic_on=False)
    if source == 'crafted':
        cls, masks = crafted_logits(seed=13)
    with torch.no_grad():  # (the host's predict path is run by the panoptic test)
        res = ours.panoptic_fusion_head.predict(
            cls, _upsampled(masks), _samples('det'), rescale=False)[0]['ins_results']
    ref = Mask2FormerImageProcessor().post_process_instance_segmentation(
        _hf_outputs(cls, masks), threshold=0.0, return_binary_maps=True)[0]
    keep = res.masks.flatten(1).any(1)
    assert keep.sum() == len(ref['segments_info']) >= (3 if source == 'model' else 8)
    ours_items = sorted(zip(res.scores[keep].tolist(), res.labels[keep].tolist(),
                            res.masks[keep]), key=lambda t: -t[0])
    hf_items = sorted(zip([s['score'] for s in ref['segments_info']],
                          [s['label_id'] for s in ref['segments_info']],
                          ref['segmentation'].bool()), key=lambda t: -t[0])
    for (s1, l1, m1), (s2, l2, m2) in zip(ours_items, hf_items):
        assert l1 == l2 and abs(s1 - s2) <= 1e-5 and torch.equal(m1, m2)


def test_missing_part_of_a_packed_key_is_named(saved, tmp_path):
    """A checkpoint lacking the value projection of one HF Swin block."""
    from safetensors.torch import load_file, save_file
    import shutil
    folder = tmp_path / 'broken'
    shutil.copytree(saved['swin'][1], folder)
    state = load_file(folder / 'model.safetensors')
    key = next(k for k in state if k.endswith('blocks.0.attention.self.value.weight'))
    del state[key]
    save_file(state, folder / 'model.safetensors', metadata={'format': 'pt'})
    err = run_tool('hf', folder, tmp_path / 'out.pth', '--dataset', 'coco-panoptic',
                   '--num-things', NUM_THINGS)
    assert err is not None and '\n' not in err
    assert 'attn.w_msa.qkv.weight needs parts' in err and "'value'" in err
    assert not (tmp_path / 'out.pth').exists()


def test_full_size_swin_l_layout_fits_our_config():
    """HF's Swin-L COCO-panoptic model (200 queries, window 12, 384), built
    on the meta device with transformers 5's module names (``swin.``,
    ``q_proj``, ``relative_position_bias``), converts onto exactly the keys
    and shapes of configs/mask2former_swin-l_coco-panoptic.py."""
    from mmengine.config import Config
    from m2f_mm.converters.arch import build_config, model_state_shapes
    from m2f_mm.converters.common import check_against
    from m2f_mm.converters.hf import convert_hf_state_dict, hf_architecture
    bb = SwinConfig(embed_dim=192, depths=[2, 2, 18, 2], num_heads=[6, 12, 24, 48],
                    window_size=12, image_size=384, out_features=STAGES)
    config = Mask2FormerConfig(backbone_config=bb, num_queries=200, num_labels=133)
    with torch.device('meta'):
        state = Mask2FormerForUniversalSegmentation(config).state_dict()
    out = convert_hf_state_dict(state, 'hf swin-l')
    cfg = Config.fromfile(os.path.join(REPO, 'configs', 'mask2former_swin-l_coco-panoptic.py'))
    cfg.model.backbone.init_cfg = None
    ours = model_state_shapes(cfg)
    check_against(out, ours, 'hf swin-l')
    print(f'\nHF Swin-L: {len(state)} keys in, {len(out)} ours')
    arch = hf_architecture(config.to_dict(), state, 'hf swin-l')
    assert model_state_shapes(build_config(arch, 'coco-panoptic')) == ours


def test_pytorch_model_bin_reads_like_safetensors(saved, tmp_path):
    """Hub folders with only pytorch_model.bin (read with weights_only=True)."""
    import shutil
    from safetensors.torch import load_file
    folder = tmp_path / 'bin'
    folder.mkdir()
    shutil.copy(saved['resnet'][1] / 'config.json', folder)
    torch.save(load_file(saved['resnet'][1] / 'model.safetensors'),
               folder / 'pytorch_model.bin')
    for name, src in (('st', saved['resnet'][1]), ('bin', folder)):
        err = run_tool('hf', src, tmp_path / f'{name}.pth', '--dataset', 'coco-panoptic',
                       '--num-things', NUM_THINGS)
        assert err is None, err
    a = torch.load(tmp_path / 'st.pth', weights_only=True)['state_dict']
    b = torch.load(tmp_path / 'bin.pth', weights_only=True)['state_dict']
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
