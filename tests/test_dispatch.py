"""The choice of implementation per (device, dtype, fast paths, deterministic
mode), for every combination; the deterministic forms (gathered bilinear
sampling, matrix-form resizing, the spelled-out class loss) against the
PyTorch ops they replace, values and gradients; deterministic runs that warn
and name an op instead of failing."""
import importlib
import itertools
import warnings

import pytest
import torch
import torch.nn.functional as F

from m2f_mm.ops import (attention_backends, deform_attn_impl, gather_sample,
                        matrix_resize, ms_deform_attn, ms_deform_attn_reference,
                        point_sample_impl, resize_impl)
from m2f_mm.ops.ms_deform_attn import _gather_levels

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def _expected_deform_attn(device, dtype, fast, deterministic):
    if device == 'cuda':
        if deterministic:
            return 'gather'
        if not fast:
            return 'grid_sample'
        return 'mmcv' if dtype in (torch.float32, torch.float64) else 'mmcv_float32'
    if device == 'cpu' and fast and dtype in (torch.float32, torch.float64):
        return 'sparse'
    return 'grid_sample'


@pytest.mark.parametrize('device,dtype,fast,deterministic', list(itertools.product(
    ['cpu', 'cuda', 'mps'], DTYPES, [True, False], [True, False])))
def test_deform_attn_impl_for_every_combination(device, dtype, fast, deterministic):
    got = deform_attn_impl(device, dtype, fast, deterministic)
    assert got == _expected_deform_attn(device, dtype, fast, deterministic)


@pytest.mark.parametrize('device,deterministic,grad', list(itertools.product(
    ['cpu', 'cuda'], [True, False], [True, False])))
def test_sampling_resize_and_attention_choices(device, deterministic, grad):
    special = device == 'cuda' and deterministic
    assert point_sample_impl(device, deterministic, grad) == (
        'gather' if special and grad else 'grid_sample')
    assert resize_impl(device, deterministic, grad) == (
        'matrix' if special and grad else 'interpolate')
    backends = attention_backends(device, deterministic)
    if special:
        from torch.nn.attention import SDPBackend
        assert backends == [SDPBackend.MATH]
    else:
        assert backends is None


def _coords(n, p, seed):
    g = torch.Generator().manual_seed(seed)
    # some points off the map and on its border: zeros padding must agree
    return torch.rand(n, p, 2, generator=g, dtype=torch.float64) * 1.2 - 0.1


@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_gather_sample_equals_grid_sample_with_gradients(dtype, tol):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 7, 9, generator=g, dtype=dtype, requires_grad=True)
    coords = _coords(3, 40, 1).to(dtype)
    coords[0, :4] = torch.tensor([[0., 0.], [1., 1.], [0.5, 0.5], [1 / 9, 1 / 7]])
    ref = F.grid_sample(x, coords.unsqueeze(2) * 2 - 1, align_corners=False)[..., 0]
    got = gather_sample(x, coords)
    assert got.dtype == dtype and got.shape == ref.shape
    torch.testing.assert_close(got, ref, atol=tol, rtol=tol)
    w = torch.randn(ref.shape, generator=g, dtype=dtype)
    g_ref, = torch.autograd.grad((ref * w).sum(), x)
    g_got, = torch.autograd.grad((got * w).sum(), x)
    torch.testing.assert_close(g_got, g_ref, atol=tol, rtol=tol)


def test_gather_sample_keeps_reduced_dtypes_and_exact_indices():
    """bfloat16 maps larger than bfloat16 counts exactly: the index
    arithmetic runs in float32."""
    x = torch.arange(300 * 300, dtype=torch.float32).view(1, 1, 300, 300)
    coords = torch.tensor([[[(250 + 0.5) / 300, (299 + 0.5) / 300]]])  # pixel centre
    out = gather_sample(x.to(torch.bfloat16), coords)
    assert out.dtype == torch.bfloat16
    assert float(out) == float(torch.tensor(299 * 300 + 250.).to(torch.bfloat16))


@pytest.mark.parametrize('size', [(16, 24), (5, 3), (8, 12), (11, 17)])
def test_matrix_resize_equals_interpolate_with_gradients(size):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 12, generator=g, dtype=torch.float64, requires_grad=True)
    ref = F.interpolate(x, size=size, mode='bilinear', align_corners=False)
    got = matrix_resize(x, size)
    torch.testing.assert_close(got, ref, atol=1e-12, rtol=1e-12)
    w = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    g_ref, = torch.autograd.grad((ref * w).sum(), x)
    g_got, = torch.autograd.grad((got * w).sum(), x)
    torch.testing.assert_close(g_got, g_ref, atol=1e-12, rtol=1e-12)


SHAPES = [(6, 8), (3, 4), (2, 2)]


def _deform_inputs(dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    nv = sum(h * w for h, w in SHAPES)
    value = torch.randn(2, nv, 4, 8, generator=g, dtype=dtype)
    loc = (torch.rand(2, 30, 4, 3, 4, 2, generator=g, dtype=dtype) * 1.2 - 0.1)
    attn = torch.rand(2, 30, 4, 3, 4, generator=g, dtype=dtype).softmax(-1)
    return [t.requires_grad_() for t in (value, loc, attn)]


def test_gathered_deformable_attention_equals_reference_with_gradients():
    value, loc, attn = _deform_inputs()
    ref = ms_deform_attn_reference(value, SHAPES, loc, attn)
    got = ms_deform_attn_reference(value, SHAPES, loc, attn, _gather_levels)
    torch.testing.assert_close(got, ref, atol=1e-12, rtol=1e-12)
    w = torch.randn(ref.shape, dtype=ref.dtype)
    for a, b in zip(torch.autograd.grad((ref * w).sum(), (value, loc, attn)),
                    torch.autograd.grad((got * w).sum(), (value, loc, attn))):
        torch.testing.assert_close(b, a, atol=1e-10, rtol=1e-10)


def test_reference_computes_reduced_and_mixed_inputs_in_float32():
    """Under autocast the value arrives in bf16, the locations in float32:
    computed in float32, returned in the value's dtype."""
    value, loc, attn = [t.detach() for t in _deform_inputs(torch.float32)]
    full = ms_deform_attn_reference(value, SHAPES, loc, attn)
    mixed = ms_deform_attn_reference(value.bfloat16(), SHAPES, loc, attn)
    assert mixed.dtype == torch.bfloat16
    exact = ms_deform_attn_reference(value.bfloat16().float(), SHAPES, loc, attn)
    torch.testing.assert_close(mixed.float(), exact, atol=1e-2, rtol=1e-2)
    assert (mixed.float() - full).abs().max() < 0.05


def test_ms_deform_attn_follows_the_dispatch(monkeypatch):
    """ms_deform_attn runs what deform_attn_impl names (checked on CPU by
    asking for each implementation)."""
    mod = importlib.import_module('m2f_mm.ops.ms_deform_attn')
    value, loc, attn = _deform_inputs(torch.float32)
    ref = ms_deform_attn_reference(value, SHAPES, loc, attn)
    for impl, node in [('sparse', 'GeneratedBackwardFor_m2f_mm_ms_deform_attn_sparse'),
                       ('gather', 'GatherBackward'), ('grid_sample', 'GridSampler')]:
        monkeypatch.setattr(mod, 'current_deform_attn_impl', lambda v, i=impl: i)
        out = ms_deform_attn(value, SHAPES, loc, attn)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
        # the autograd graph names the implementation that ran; `visited`
        # holds the nodes (Python wrappers) so that their ids stay unique
        seen, visited, stack = set(), {}, [out.grad_fn]
        while stack:
            fn = stack.pop()
            if fn is not None and id(fn) not in visited:
                visited[id(fn)] = fn
                seen.add(type(fn).__name__)
                stack += [f for f, _ in fn.next_functions]
        assert any(name.startswith(node) for name in seen), (impl, seen)


def test_class_loss_equals_weighted_cross_entropy():
    from m2f_mm.models.losses.mask_losses import class_loss
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 2, 10, 6, generator=g, dtype=torch.float64,
                         requires_grad=True)
    labels = torch.randint(0, 6, (3, 2, 10), generator=g)
    weight = torch.rand(6, generator=g, dtype=torch.float64) + 0.1
    got = class_loss(logits, labels, weight)
    ce = F.cross_entropy(logits.flatten(0, -2), labels.flatten(), weight=weight,
                         reduction='none').view(labels.shape)
    ref = ce.sum(-1) / weight[labels].sum(-1)
    torch.testing.assert_close(got, ref, atol=1e-12, rtol=1e-12)
    g_got, = torch.autograd.grad(got.sum(), logits)
    g_ref, = torch.autograd.grad(ref.sum(), logits)
    torch.testing.assert_close(g_got, g_ref, atol=1e-12, rtol=1e-12)


@pytest.fixture
def restore_determinism():
    mode = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    hook = warnings.showwarning
    yield
    torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    warnings.showwarning = hook


def test_nondeterministic_ops_are_named_once_in_the_log(restore_determinism):
    from mmengine.logging import MMLogger

    from m2f_mm.utils.determinism import log_nondeterministic_ops
    passed = []
    warnings.showwarning = lambda *a, **k: passed.append(str(a[0]))
    hook = log_nondeterministic_ops()
    assert log_nondeterministic_ops() is hook  # installed once
    logger = MMLogger.get_current_instance()
    lines = []
    handler = type('H', (__import__('logging').Handler,), {
        'emit': lambda self, r: lines.append(r.getMessage())})()
    logger.addHandler(handler)
    try:
        msg = ("upsample_bilinear2d_backward_out_cuda does not have a deterministic "
               "implementation, but you set 'torch.use_deterministic_algorithms(True, "
               "warn_only=True)'. You can file an issue at ...")
        for _ in range(3):
            warnings.showwarning(UserWarning(msg), UserWarning, 'x.py', 1)
        warnings.showwarning(UserWarning(
            'median CUDA with indices output does not have a deterministic '
            'implementation, but you set ...'), UserWarning, 'x.py', 3)
        warnings.showwarning(UserWarning('something else'), UserWarning, 'x.py', 2)
    finally:
        logger.removeHandler(handler)
    assert lines == [f'deterministic mode: {op} has no deterministic kernel on this '
                     'device; this run may not repeat bit for bit' for op in (
                         'upsample_bilinear2d_backward_out_cuda',
                         'median CUDA with indices output')]
    assert passed == ['something else']  # other warnings are passed on
    assert hook.seen == {'upsample_bilinear2d_backward_out_cuda',
                         'median CUDA with indices output'}


def test_deterministic_config_warns_instead_of_failing(restore_determinism, monkeypatch):
    from mmengine.config import Config

    from m2f_mm.utils.determinism import CUBLAS_ENV, prepare_deterministic
    from m2f_mm.utils.runner import M2FRunner
    monkeypatch.delenv(CUBLAS_ENV, raising=False)
    assert not prepare_deterministic(Config(dict(randomness=dict(seed=0))))
    import os
    assert CUBLAS_ENV not in os.environ
    assert prepare_deterministic(Config(dict(randomness=dict(deterministic=True))))
    assert os.environ[CUBLAS_ENV] == ':4096:8'
    runner = M2FRunner.__new__(M2FRunner)  # set_randomness needs no other state
    runner.set_randomness(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()


@pytest.mark.parametrize('device,fast', list(itertools.product(
    ['cpu', 'cuda', 'mps'], [True, False])))
def test_mask_point_logits_choice(device, fast):
    from m2f_mm.ops import mask_point_logits_impl
    assert mask_point_logits_impl(device, fast) == (
        'full' if device == 'cpu' and fast else 'features')
