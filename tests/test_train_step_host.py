"""The train step's way to the logs: the detector's ``parse_losses`` sums
the loss terms in one op (mmengine's chains a ``mean`` and an ``add`` per
term, forward and backward), and ``LogVarsToHostHook`` brings the log
variables to the host in one copy before mmengine's ``RuntimeInfoHook``
would ``.item()`` each (one synchronisation per term on CUDA)."""
import os
import sys

import pytest
import torch
from mmengine.hooks import RuntimeInfoHook
from mmengine.logging import MessageHub
from mmengine.model import BaseModel

from m2f_mm.engine import LogVarsToHostHook
from m2f_mm.models.detectors.mask2former import Mask2Former

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), 'tools'))
from bench.profiling import computing_ops  # noqa: E402


def _losses(seed=0):
    g = torch.Generator().manual_seed(seed)
    values = torch.rand(31, generator=g, dtype=torch.float64).float()
    # one leaf per term: the backward counted is parse_losses' own
    leaves = [v.clone().requires_grad_() for v in values.unbind()]
    names = ['loss_cls', 'loss_mask', 'loss_dice']
    names += [f'd{d}.{n}' for d in range(9) for n in names]
    losses = dict(zip(names + ['acc'], leaves))  # acc: logged, not summed
    return leaves, losses


def _compute_ops(fn) -> int:
    """Top-level aten ops other than views (the benchmark's count): on
    CUDA, about the kernels launched."""
    from torch.profiler import profile
    with profile() as prof:
        fn()
    return computing_ops(prof)


def test_parse_losses_equals_mmengines_with_fewer_ops():
    leaves_ref, losses_ref = _losses()
    leaves, losses = _losses()
    ref_total, ref_vars = BaseModel.parse_losses(None, losses_ref)
    total, log_vars = Mask2Former.parse_losses(
        # a bare instance: parse_losses uses nothing of the model
        Mask2Former.__new__(Mask2Former), losses)
    assert list(log_vars) == list(ref_vars)
    for key in ref_vars:
        torch.testing.assert_close(log_vars[key], ref_vars[key], rtol=1e-6, atol=0)
    # the total leaves out what is not a loss
    expected = sum(v.item() for v in leaves_ref[:30])
    assert abs(total.item() - expected) < 1e-5
    ref_total.backward()
    total.backward()
    for leaf, ref in zip(leaves, leaves_ref):
        assert (leaf.grad is None) == (ref.grad is None)
    assert leaves[30].grad is None and all(v.grad.item() == 1 for v in leaves[:30])

    _, losses = _losses()
    ours = _compute_ops(lambda: Mask2Former.parse_losses(
        Mask2Former.__new__(Mask2Former), losses)[0].backward())
    _, losses = _losses()
    theirs = _compute_ops(
        lambda: BaseModel.parse_losses(None, losses)[0].backward())
    assert ours <= 4, ours  # stack, sum; backward: ones_like, unbind's stack
    assert theirs >= 59, theirs


def test_parse_losses_lists_and_bad_values():
    model = Mask2Former.__new__(Mask2Former)
    a, b = torch.tensor([1.0, 3.0]), torch.tensor(4.0)
    total, log_vars = model.parse_losses({'loss_a': [a, b], 'loss_b': b})
    assert total.item() == pytest.approx(2.0 + 4.0 + 4.0)
    assert log_vars['loss_a'].item() == pytest.approx(6.0)
    with pytest.raises(TypeError, match='loss_x is not a tensor or list of tensors'):
        model.parse_losses({'loss_x': 1.0})
    # a non-scalar term is averaged, as mmengine does
    total, _ = model.parse_losses({'loss_a': a})
    assert total.item() == pytest.approx(2.0)
    # what the one-op sum cannot take goes to mmengine's: the same results
    total, log_vars = model.parse_losses({'loss_a': b, 'loss_b': []})
    assert total.item() == pytest.approx(4.0) and log_vars['loss_b'] == 0
    total, _ = model.parse_losses({'loss_a': b, 'loss_b': b.double()})
    assert total.item() == pytest.approx(8.0)


def _log_with(outputs, hooks):
    hub = MessageHub.get_instance('test_train_step_host')

    class Runner:
        message_hub = hub
    for hook in hooks:
        hook.after_train_iter(Runner, 0, outputs=outputs)
    return {k: hub.get_scalar(f'train/{k}').current() for k in outputs}


def test_log_vars_hook_keeps_the_logged_values():
    _, losses = _losses(1)
    total, log_vars = Mask2Former.parse_losses(Mask2Former.__new__(Mask2Former), losses)
    log_vars['count'] = torch.tensor(7)  # an integer: left alone
    log_vars['half'] = torch.tensor(0.5, dtype=torch.float16)
    log_vars['double'] = torch.tensor(1 / 3, dtype=torch.float64)  # kept exact
    direct = _log_with(dict(log_vars), [RuntimeInfoHook()])
    outputs = dict(log_vars)
    hook = LogVarsToHostHook()
    assert hook.priority == 'HIGHEST'
    via = _log_with(outputs, [hook, RuntimeInfoHook()])
    assert via == direct
    for key, value in outputs.items():
        assert value.device.type == 'cpu' and value.dim() == 0
        assert value.dtype == log_vars[key].dtype, key
        assert not value.requires_grad
    assert outputs['count'] is log_vars['count']
    # no outputs, or nothing to bring: nothing happens
    hook.after_train_iter(None, 0, outputs=None)
    hook.after_train_iter(None, 0, outputs={'x': 'text'})


def test_log_vars_hook_runs_before_runtime_info_hook(tmp_path):
    """In a Runner built from a config's custom_hooks, the hook comes
    before RuntimeInfoHook."""
    from mmengine.runner import Runner

    from m2f_mm.registry import MODELS  # noqa: F401  (registers m2f_mm)

    class Tiny(BaseModel):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, *args, mode='tensor', **kwargs):
            return {'loss': self.w.sum()}
    runner = Runner(model=Tiny(), work_dir=str(tmp_path),
                    custom_hooks=[dict(type='m2f_mm.LogVarsToHostHook')])
    names = [type(h).__name__ for h in runner.hooks]
    assert names.index('LogVarsToHostHook') < names.index('RuntimeInfoHook'), names


@pytest.mark.cuda
def test_log_vars_hook_one_copy_from_cuda():
    if not torch.cuda.is_available():
        pytest.skip('needs CUDA')
    _, losses = _losses(2)
    losses = {k: v.detach().cuda() for k, v in losses.items()}
    _, log_vars = Mask2Former.parse_losses(Mask2Former.__new__(Mask2Former), losses)
    outputs = dict(log_vars)
    direct = _log_with(dict(log_vars), [RuntimeInfoHook()])
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        LogVarsToHostHook().after_train_iter(None, 0, outputs=outputs)
    copies = [e for e in prof.events() if e.name.startswith('cudaMemcpy')]
    assert len(copies) == 1, [e.name for e in copies]
    assert all(v.device.type == 'cpu' for v in outputs.values())
    assert _log_with(outputs, [RuntimeInfoHook()]) == direct
