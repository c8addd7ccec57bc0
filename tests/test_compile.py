"""torch.compile: the eval forward (backbone → pixel decoder → decoder)
traces as one graph with no break, fast paths on and off; the deformable
attention custom ops pass torch.library's checks (schema, fake, autograd);
compiled outputs and gradients equal eager; the tools' --compile and the
config's ``compile`` compile the network modules."""
import importlib
import importlib.util
import os

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

from m2f_mm.ops import fast_paths, ms_deform_attn_reference
from m2f_mm.ops.ms_deform_attn_mmcv import ms_deform_attn_mmcv
from m2f_mm.ops.ms_deform_attn_sparse import flat_shapes
from m2f_mm.utils.compile import compile_network, compile_options
from reference_models import ours_cfg

register_all_modules(init_default_scope=False)
SHAPES = [(7, 9), (4, 5), (2, 3)]


def _model(num_layers=3):
    torch.manual_seed(0)
    return MODELS.build(ours_cfg(num_layers=num_layers)).eval()


def _network(model):
    """The eval forward from the input batch to the last set's mask logits."""
    def forward(x):
        cls, masks = model.panoptic_head(model.extract_feat(x), embeddings=True)
        return cls, masks.full(-1)
    return forward


def _deform_inputs(b=2, heads=4, c=8, points=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    nv = sum(h * w for h, w in SHAPES)
    value = torch.randn(b, nv, heads, c, generator=g)
    loc = torch.rand(b, 5, heads, len(SHAPES), points, 2, generator=g) * 1.4 - 0.2
    attn = torch.rand(b, 5, heads, len(SHAPES), points, generator=g)
    return [t.requires_grad_() for t in (value, loc, attn)]


@pytest.mark.parametrize('fast', [True, False])
def test_eval_forward_has_no_graph_break(fast):
    model, x = _model(), torch.randn(1, 3, 128, 128)
    torch._dynamo.reset()
    with fast_paths(fast), torch.no_grad():
        explained = torch._dynamo.explain(_network(model))(x)
    reasons = [r.reason.splitlines()[0] for r in explained.break_reasons]
    assert explained.graph_break_count == 0, reasons
    assert explained.graph_count == 1


def test_sparse_custom_op_passes_opcheck():
    value, loc, attn = _deform_inputs()
    torch.library.opcheck(torch.ops.m2f_mm.ms_deform_attn_sparse.default,
                          (value, loc, attn, flat_shapes(SHAPES)))


def test_mmcv_custom_op_fake_and_plumbing(monkeypatch):
    """mmcv's kernel is CUDA only: on CPU the fake gives the shapes (meta
    tensors), and an extension stand-in that computes the reference shows
    that forward and backward pass the right tensors to the right slots."""
    value, loc, attn = _deform_inputs()
    meta = [t.detach().to('meta') for t in (value, loc, attn)]
    out = ms_deform_attn_mmcv(meta[0], SHAPES, meta[1], meta[2], 64)
    assert out.shape == (2, 5, 32) and out.device.type == 'meta'

    class Ext:
        @staticmethod
        def ms_deform_attn_forward(v, spatial, start, l, w, im2col_step):
            assert spatial.tolist() == [list(s) for s in SHAPES]
            assert start.tolist() == [0, 63, 83] and im2col_step == 64
            return ms_deform_attn_reference(v, SHAPES, l, w)

        @staticmethod
        def ms_deform_attn_backward(v, spatial, start, l, w, g, gv, gl, gw,
                                    im2col_step):
            # an op's kernel runs below autograd: the sparse form's backward
            grads = torch.ops.m2f_mm.ms_deform_attn_sparse_backward(
                g, v, l, w, flat_shapes(SHAPES), True, True)
            for acc, grad in zip((gv, gl, gw), grads):
                acc += grad

    mod = importlib.import_module('m2f_mm.ops.ms_deform_attn_mmcv')
    monkeypatch.setattr(mod, '_ext', lambda: Ext)
    grad_out = torch.randn(2, 5, 32)
    got = ms_deform_attn_mmcv(value, SHAPES, loc, attn, 64)
    want = ms_deform_attn_reference(value, SHAPES, loc, attn)
    torch.testing.assert_close(got, want)
    for a, b in zip(torch.autograd.grad(got, (value, loc, attn), grad_out),
                    torch.autograd.grad(want, (value, loc, attn), grad_out)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('fast', [True, False])
def test_traced_train_forward_and_grads_equal_eager(fast):
    """AOTAutograd's trace (the custom ops through their fakes, the real
    kernels run): the head's outputs and parameter gradients equal eager."""
    model = _model(num_layers=2).train()
    x = torch.randn(1, 3, 96, 96)
    forward = _network(model)

    def run(fn):
        model.zero_grad()
        cls, masks = fn(x)
        (cls[-1].square().sum() + masks.square().mean()).backward()
        return [cls[-1].detach(), masks.detach()] + [
            p.grad.clone() for p in model.panoptic_head.parameters() if p.grad is not None]

    torch._dynamo.reset()
    with fast_paths(fast):
        eager = run(forward)
        traced = run(torch.compile(forward, backend='aot_eager'))
    assert len(traced) == len(eager)
    for a, b in zip(traced, eager):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize('fast', [True, False])
def test_compiled_eval_forward_equals_eager(fast):
    """Inductor (about a minute of compiling on 2 CPU cores per case)."""
    model, x = _model(), torch.randn(1, 3, 128, 128)
    torch._dynamo.reset()
    with fast_paths(fast), torch.no_grad():
        eager = _network(model)(x)
        compiled = torch.compile(_network(model))(x)
    for a, b in zip(compiled[0] + [compiled[1]], eager[0] + [eager[1]]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_compile_options_and_network():
    assert compile_options(None) is None and compile_options(False) is None
    assert compile_options(True) == {}
    assert compile_options(dict(mode='max-autotune')) == dict(mode='max-autotune')
    with pytest.raises(ValueError, match='compile must be'):
        compile_options('yes')
    model = _model()
    keys = list(model.state_dict())
    assert compile_network(model, dict(backend='eager')) == ['backbone', 'panoptic_head']
    assert model.backbone._compiled_call_impl is not None
    assert list(model.state_dict()) == keys  # checkpoints load as before


def test_runner_compiles_the_network_not_train_step():
    from types import SimpleNamespace

    from mmengine.config import Config
    from mmengine.logging import MMLogger

    from m2f_mm.utils.runner import M2FRunner
    model = _model()
    runner = SimpleNamespace(cfg=Config(dict(compile=dict(backend='eager'))),
                             model=model, logger=MMLogger.get_current_instance())
    M2FRunner._maybe_compile(runner, 'train_step')
    assert model.panoptic_head._compiled_call_impl is not None
    assert 'train_step' not in vars(model)  # mmengine's target left alone


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_tools_compile_flag(tool, tmp_path, monkeypatch):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location(
        f'{tool}_tool', os.path.join(repo, 'tools', f'{tool}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    config = os.path.join(repo, 'configs/quickstart/'
                          'mask2former_r18-toyshapes_toy-panoptic.py')
    ckpt = tmp_path / 'x.pth'
    ckpt.write_bytes(b'')
    argv = [config] + ([str(ckpt)] if tool == 'test' else []) + [
        '--compile', '--work-dir', str(tmp_path)]
    # the quickstart's pretrained backbone need not exist for this
    monkeypatch.setattr(mod, 'check_pretrained_backbone', lambda cfg: None,
                        raising=False)
    assert mod.build_cfg(mod.parse_args(argv)).compile is True
    assert not mod.build_cfg(mod.parse_args(argv[:-3])).get('compile')
