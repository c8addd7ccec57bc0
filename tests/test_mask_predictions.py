"""Mask logits only where they are used: the decoder's mask embeddings
give the same point logits, losses, gradients and attention masks as the
full-resolution logits they replace."""
import copy

import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

from m2f_mm.models.decoders import (FullMasks, MaskEmbeddings, attention_keep_mask,
                                    keep_where_predicted)
from m2f_mm.models.heads import hosts
from m2f_mm.ops import fast_paths
from reference_models import ours_cfg
from synthetic import make_sample

register_all_modules(init_default_scope=False)


def _model():
    torch.manual_seed(0)
    model = MODELS.build(ours_cfg(num_layers=3, feat=32, num_points=256))
    model.init_weights()
    return model


def _inputs(model):
    torch.manual_seed(1)
    feats = model.extract_feat(torch.randn(2, 3, 64, 64))
    samples = [make_sample(64, 64, seed=s) for s in (1, 2)]
    return feats, samples


def test_point_logits_equal_sampled_full_logits():
    g = torch.Generator().manual_seed(0)
    embeds = [torch.randn(2, 5, 8, generator=g) for _ in range(3)]
    features = torch.randn(2, 8, 12, 16, generator=g)
    points = torch.rand(3, 40, 2, generator=g)
    emb = MaskEmbeddings(embeds, features)
    full = FullMasks(emb.all_full())
    import m2f_mm.models.decoders.mask_predictions as mod
    for impl in ('features', 'full'):  # the GPU's route and the CPU's
        mod.mask_point_logits_impl = lambda device, fast, i=impl: i
        try:
            _compare_point_logits(emb, full, points)
        finally:
            from m2f_mm.ops import mask_point_logits_impl
            mod.mask_point_logits_impl = mask_point_logits_impl
    assert emb.finite().all() and emb.finite().shape == (3, 2)
    embeds[1][1, 2, 3] = float('nan')
    assert MaskEmbeddings(embeds, features).finite().tolist() == [
        [True, True], [True, False], [True, True]]


def _compare_point_logits(emb, full, points):
    for image in (0, 1):
        torch.testing.assert_close(emb.point_logits(range(0, 3), image, points),
                                   full.point_logits(range(0, 3), image, points),
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(emb.point_logits(range(1, 3), image, points[1:]),
                                   full.point_logits(range(1, 3), image, points[1:]),
                                   atol=1e-5, rtol=1e-5)


def test_losses_and_gradients_equal_the_full_resolution_route():
    """Every loss term and every gradient, on the same random points: the
    embeddings (full logits of the matched queries only) against all sets'
    full logits."""
    model = _model()
    head = model.panoptic_head
    feats, samples = _inputs(model)
    targets = hosts.targets_from_samples(samples, head.counts, head.ignore_index)
    results = []
    for route in ('embeddings', 'full'):
        leaves = [f.detach().requires_grad_() for f in feats]
        with fast_paths(False):
            all_cls, masks = head(leaves, embeddings=True)
        if route == 'full':
            masks = masks.all_full()
        head.criterion.generator = torch.Generator().manual_seed(0)
        losses = head.criterion(all_cls, masks, targets)
        grads = torch.autograd.grad(sum(losses.values()),
                                    leaves + list(head.parameters()), allow_unused=True)
        results.append((losses, grads))
    (emb_losses, emb_grads), (full_losses, full_grads) = results
    assert emb_losses.keys() == full_losses.keys() and len(emb_losses) == 12
    for k in emb_losses:
        torch.testing.assert_close(emb_losses[k], full_losses[k], atol=1e-5, rtol=1e-5)
    pairs = [(a, b) for a, b in zip(emb_grads, full_grads) if b is not None]
    assert len(pairs) > 50  # the features and the head's parameters
    # 1e-5 of each gradient's largest value; gradients that are zero up to
    # rounding (a few 1e-9) against 1e-5 of the largest gradient of all
    floor = 1e-5 * max(float(b.abs().max()) for _, b in pairs)
    for a, b in pairs:
        assert float((a - b).abs().max()) <= max(1e-5 * float(b.abs().max()), floor)


def test_attention_masks_equal_those_of_resized_full_logits():
    """The decoder thresholds the embeddings times the resized features; the
    reference resizes the full logits. They differ only at pixels within
    1e-5 of the threshold (counted)."""
    model = _model()
    head = model.panoptic_head
    feats, _ = _inputs(model)
    mod = __import__('m2f_mm.models.decoders.masked_attention_decoder',
                     fromlist=['x'])
    seen = []
    real = mod.keep_where_predicted

    def record(logits):
        seen.append(logits)
        return real(logits)
    mod.keep_where_predicted = record
    try:
        with torch.no_grad():
            mask_features, levels = head.pixel_decoder(feats)
            all_cls, masks = head.transformer_decoder(mask_features, levels,
                                                      embeddings=True)
    finally:
        mod.keep_where_predicted = real
    assert len(seen) == len(head.transformer_decoder.layers)
    flipped = pixels = 0
    for s, level_logits in enumerate(seen):
        size = level_logits.shape[-2:]
        ref = attention_keep_mask(masks.full(s), size)
        got = keep_where_predicted(level_logits)
        differ = ref != got
        flipped += int(differ.sum())
        pixels += differ.numel()
        if differ.any():
            assert float(level_logits.flatten(2)[differ].abs().max()) < 1e-5
    print(f'attention-mask pixels that differ: {flipped} of {pixels}')
    assert flipped <= 1e-3 * pixels


def test_full_logits_on_request_equal_the_embeddings_product():
    model = _model()
    head = model.panoptic_head
    feats, _ = _inputs(model)
    with torch.no_grad():
        all_cls, full = head(feats)
        all_cls2, emb = head(feats, embeddings=True)
    assert len(full) == len(emb) == 4
    for s, f in enumerate(full):
        assert torch.equal(f, emb.full(s))
    assert all(torch.equal(a, b) for a, b in zip(all_cls, all_cls2))
    copy.deepcopy(emb.embeds)  # plain tensors, nothing held beyond them


def test_prediction_heads_run_once_with_autograd_on_all_sets():
    """The layers' attention masks need each set's mask embedding at once
    (without autograd); the heads the losses differentiate run once, on the
    stacked queries of all sets, and equal the heads run set by set."""
    model = _model()
    decoder = model.panoptic_head.transformer_decoder
    feats, samples = _inputs(model)
    calls = []  # (grad enabled, the post-norm's input)
    handles = [decoder.post_norm.register_forward_hook(
        lambda m, args, out: calls.append((torch.is_grad_enabled(), args[0].detach())))]
    grad_calls = {'cls': 0, 'mask': 0}
    for name, module in (('cls', decoder.cls_embed), ('mask', decoder.mask_embed)):
        handles.append(module.register_forward_hook(
            lambda m, a, o, n=name: grad_calls.__setitem__(
                n, grad_calls[n] + torch.is_grad_enabled())))
    mask_features, levels = model.panoptic_head.pixel_decoder(feats)
    try:
        all_cls, masks = decoder(mask_features, levels, embeddings=True)
    finally:
        for h in handles:
            h.remove()
    num_layers = len(decoder.layers)
    assert grad_calls == {'cls': 1, 'mask': 1}
    assert [g for g, _ in calls] == [False] * num_layers + [True]
    stacked = calls[-1][1]
    assert stacked.shape[0] == num_layers + 1 == len(all_cls) == len(masks)
    assert all_cls[0].requires_grad and masks.embeds.requires_grad
    with torch.no_grad():
        for s in range(num_layers + 1):
            if s < num_layers:  # the state the loop saw is the stacked one
                assert torch.equal(calls[s][1], stacked[s])
            cls, embed = decoder.predict(stacked[s])
            torch.testing.assert_close(all_cls[s], cls, atol=1e-6, rtol=1e-6)
            torch.testing.assert_close(masks.embeds[s], embed, atol=1e-6, rtol=1e-6)
