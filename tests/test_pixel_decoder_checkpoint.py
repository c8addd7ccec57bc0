"""``MSDeformAttnPixelDecoder(with_cp=True)``: the encoder layers are
recomputed in backward instead of keeping their activations; outputs and
gradients are those without it, and less is kept for backward."""
import pytest
import torch

from m2f_mm.models.pixel_decoders import MSDeformAttnPixelDecoder
from m2f_mm.ops import fast_paths

IN_CHANNELS = (16, 24, 32, 40)


def _decoder(with_cp):
    torch.manual_seed(0)
    dec = MSDeformAttnPixelDecoder(in_channels=IN_CHANNELS, feat_channels=32,
                                   out_channels=32, num_layers=2, num_heads=4,
                                   ffn_dims=64, with_cp=with_cp)
    dec.init_weights()
    return dec


def _feats():
    g = torch.Generator().manual_seed(1)
    return [torch.randn(2, c, 64 // s, 64 // s, generator=g).requires_grad_()
            for c, s in zip(IN_CHANNELS, (4, 8, 16, 32))]


def _run(with_cp, fast, backward_fast=None):
    """Outputs, input gradients and parameter gradients; the backward runs
    under ``backward_fast`` (default: the forward's switch)."""
    dec, feats = _decoder(with_cp), _feats()
    kept = []

    def pack(t):
        kept.append(t.untyped_storage().nbytes())
        return t
    with fast_paths(fast), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        mask_feat, outs = dec(feats)
    loss = mask_feat.square().sum() + sum(o.square().sum() for o in outs)
    with fast_paths(fast if backward_fast is None else backward_fast):
        loss.backward()
    grads = [f.grad for f in feats] + [p.grad for p in dec.parameters()]
    return [mask_feat.detach()] + [o.detach() for o in outs], grads, sum(kept)


@pytest.mark.parametrize('fast', [True, False])
def test_checkpointed_encoder_gives_the_same_outputs_and_gradients(fast):
    outs, grads, kept = _run(False, fast)
    outs_cp, grads_cp, kept_cp = _run(True, fast)
    assert all(torch.equal(a, b) for a, b in zip(outs, outs_cp))
    assert all(torch.equal(a, b) for a, b in zip(grads, grads_cp))
    # only each layer's inputs are kept for the encoder
    assert kept_cp < 0.75 * kept, (kept_cp, kept)


def test_recomputation_takes_the_forwards_implementations():
    """A backward outside the forward's fast-path switch still recomputes
    with the forward's implementation (else the recomputation would save
    other tensors, and checkpoint refuses that)."""
    outs, grads, _ = _run(False, fast=True)
    outs_cp, grads_cp, _ = _run(True, fast=True, backward_fast=False)
    assert all(torch.equal(a, b) for a, b in zip(grads, grads_cp))


def test_no_recomputation_in_eval_or_without_grad():
    dec, feats = _decoder(True), _feats()
    dec.eval()
    with torch.no_grad():
        ref = dec(feats)[0]
    dec.train()
    with torch.no_grad():
        assert torch.equal(dec(feats)[0], ref)


def test_checkpointed_encoder_compiles():
    """Under torch.compile (aot_eager: the traced forward and backward
    graphs) the recomputed encoder gives eager's outputs and gradients
    (the conv biases before GroupNorm have only rounding noise as their
    gradient, hence a tolerance on the scale of the largest gradient)."""
    outs, grads, _ = _run(False, fast=True)
    dec, feats = _decoder(True), _feats()
    compiled = torch.compile(dec, backend='aot_eager')
    mask_feat, levels = compiled(feats)
    (mask_feat.square().sum() + sum(o.square().sum() for o in levels)).backward()
    torch.testing.assert_close(mask_feat, outs[0], atol=1e-5, rtol=1e-5)
    got = [f.grad for f in feats] + [p.grad for p in dec.parameters()]
    scale = max(float(g.abs().max()) for g in grads)
    for a, b in zip(got, grads):
        torch.testing.assert_close(a, b, atol=1e-5 * scale, rtol=1e-5)
