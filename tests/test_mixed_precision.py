"""Mixed precision: the criterion (matching costs, point sampling, mask
losses) runs in float32 under any autocast; a few CPU bf16 iterations give
finite losses close to float32's; a non-finite prediction or cost stops
with one line naming the iteration and the image."""
import copy

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.logging import MessageHub

from m2f_mm.utils.errors import NonFiniteError
from reference_models import ours_cfg
from synthetic import make_sample

register_all_modules(init_default_scope=False)
H, W = 64, 64


def _model(seed=0):
    torch.manual_seed(seed)
    model = MODELS.build(ours_cfg(num_layers=3, feat=32))
    model.init_weights()
    return model


def _batch():
    samples = [make_sample(H, W, seed=s) for s in (1, 2)]
    for i, s in enumerate(samples):
        s.set_metainfo(dict(img_id=10 + i))
    return samples


def _feats(model, seed=0):
    torch.manual_seed(seed)
    images = torch.randn(2, 3, H, W)
    return model.extract_feat(images)


def _train(model, dtype, steps=3):
    """Losses of ``steps`` SGD steps of the head on fixed backbone features
    (the backbone is not what is tested, and slow in CPU bf16), the head's
    forward and loss under CPU autocast in ``dtype`` (None: float32)."""
    head = model.panoptic_head
    optim = torch.optim.SGD(head.parameters(), lr=1e-3)
    samples = _batch()
    with torch.no_grad():
        feats = [f.detach() for f in _feats(model, seed=1)]
    head.criterion.generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        with torch.autocast('cpu', dtype=dtype or torch.float32, enabled=dtype is not None):
            parts = head.loss(feats, samples)
        loss = sum(parts.values())
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(float(loss))
    return losses


def test_bf16_autocast_losses_are_finite_and_close_to_float32():
    base = _model()
    fp32 = _train(copy.deepcopy(base), None)
    bf16 = _train(copy.deepcopy(base), torch.bfloat16)
    assert all(torch.isfinite(torch.tensor(bf16)))
    print('float32', fp32, 'bfloat16', bf16)
    for a, b in zip(fp32, bf16):
        assert b == pytest.approx(a, rel=0.02), (fp32, bf16)
    assert bf16 != fp32  # the forward really ran in bf16


def test_criterion_runs_in_float32_under_autocast(monkeypatch):
    """The predictions come in bf16; costs, sampled points and losses are
    float32."""
    model = _model()
    crit = model.panoptic_head.criterion
    seen = {}
    real_forward, real_costs = crit._losses, crit.assigner.cost_matrices

    def losses(all_cls, all_masks, *args):
        # the decoder's mask embeddings and features, as the criterion holds them
        seen['pred'] = {all_cls[0].dtype, all_masks.embeds.dtype,
                        all_masks.features.dtype}
        out = real_forward(all_cls, all_masks, *args)
        seen['loss'] = {v.dtype for v in out.values()}
        return out

    def costs(*args):
        out = real_costs(*args)
        seen['cost'] = out.dtype
        return out

    monkeypatch.setattr(crit, '_losses', losses)
    monkeypatch.setattr(crit.assigner, 'cost_matrices', costs)
    feats = _feats(model)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        all_cls, all_masks = model.panoptic_head(feats)
        assert all_masks[-1].dtype == torch.bfloat16  # autocast is on
        model.panoptic_head.loss(feats, _batch())
    assert seen == {'pred': {torch.float32}, 'cost': torch.float32,
                    'loss': {torch.float32}}


def test_nan_prediction_names_iteration_and_image():
    model = _model()
    head = model.panoptic_head
    feats = _feats(model)
    samples = _batch()
    all_cls, all_masks = head(feats)
    all_masks[2] = all_masks[2].clone()
    all_masks[2][1, 3, 5, 5] = float("nan")  # set 2, second image
    targets = [(torch.tensor([0]), torch.ones(1, H, W, dtype=torch.bool))] * 2
    names = ['image id 10 (a.png)', 'image id 11 (b.png)']
    MessageHub.get_current_instance().update_info('iter', 41)
    try:
        with pytest.raises(NonFiniteError) as e:
            head.criterion(all_cls, all_masks, targets, names)
    finally:
        MessageHub.get_current_instance().update_info('iter', None)
    msg = str(e.value)
    assert msg.startswith('iteration 42, image id 11 (b.png): the predicted class or '
                          'mask logits of decoder set(s) [2] have NaN or inf'), msg
    assert '\n' not in msg


def test_nan_in_the_model_stops_before_scipy():
    """Through the head (the names come from the samples); scipy's
    "cost matrix is infeasible" is never reached."""
    model = _model()
    with torch.no_grad():
        model.panoptic_head.transformer_decoder.cls_embed.bias[0] = float('inf')
    with pytest.raises(NonFiniteError, match=r'^image id 10 \(synthetic_1.png\): the '
                                             r'predicted class or mask logits'):
        model.panoptic_head.loss(_feats(model), _batch())


def test_non_finite_cost_is_one_line():
    from m2f_mm.models.assigners import PointHungarianAssigner
    cls = torch.zeros(2, 4, 3)
    logits = torch.zeros(2, 4, 16)
    logits[1, 0, 0] = float('inf')  # +inf logit: inf - inf in the BCE cost
    with pytest.raises(NonFiniteError, match=r'^iteration 3, image id 5: the matching '
                                             r'cost of decoder set\(s\) \[1\] has NaN or inf'):
        PointHungarianAssigner().assign(cls, logits, torch.tensor([0]),
                                        torch.ones(1, 8, 8, dtype=torch.bool),
                                        torch.rand(2, 16, 2),
                                        where='iteration 3, image id 5')
