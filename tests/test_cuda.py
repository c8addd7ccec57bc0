"""CUDA: the same model on CUDA and CPU, fast paths on and off, mixed
precision training, deformable attention's CUDA paths against the
reference, the tools end to end and deterministic mode. Skipped without a
GPU; ``pytest -m cuda`` runs them (see the README's GPU section)."""
import copy
import importlib
import os
import sys

import pytest
import torch

from synthetic import make_sample

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tools'))
PANOPTIC = os.path.join(REPO, 'configs/quickstart/mask2former_r18_toy-panoptic.py')


@pytest.fixture
def no_tf32(restore_tf32):
    """Full float32 products, so that CUDA and CPU compare to 1e-4."""
    from m2f_mm.utils.tf32 import apply_tf32
    apply_tf32(False)


def _r50(seed=0):
    sys.path.insert(0, os.path.join(REPO, 'tools'))
    from bench.models import build_mmdet_pair
    ours, _ = build_mmdet_pair(seed)
    return ours.eval()


def _batch(size=256, batch=2):
    from bench.batch import synthetic_batch
    return synthetic_batch(size, batch, seed=0)


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def _sets(model, inputs, samples):
    with torch.no_grad():
        cls, masks = model.panoptic_head(model.extract_feat(inputs), samples)
    return cls + masks


class SameAttentionMasks:
    """Records the masked-attention masks of one forward and hands them to
    the next one. With random weights many mask logits sit near the 0.5
    threshold, and a pixel that one run puts a float rounding to the other
    side of changes that query's attention from there on; replayed, the two
    runs compare the arithmetic. The second run counts the pixels it would
    have flipped and their largest distance from the threshold (logits)."""

    def __init__(self, monkeypatch):
        mod = importlib.import_module('m2f_mm.models.decoders.masked_attention_decoder')
        self.real = mod.keep_where_predicted
        monkeypatch.setattr(mod, 'keep_where_predicted', self)
        self.recorded, self.replaying, self.calls = [], False, 0
        self.flipped, self.pixels, self.margin = 0, 0, 0.0

    def replay(self):
        self.replaying, self.calls = True, 0

    def __call__(self, logits):  # B×Q×h×w at the memory's resolution
        keep = self.real(logits)
        if not self.replaying:
            self.recorded.append(keep.cpu())
            return keep
        want = self.recorded[self.calls].to(keep.device)
        self.calls += 1
        flips = keep != want
        self.flipped += int(flips.sum())
        self.pixels += flips.numel()
        if flips.any():
            self.margin = max(self.margin,
                              float(logits.float().flatten(2)[flips].abs().max()))
        return want


def _compare_sets(a, b, masks, what):
    errors = [_rel(x.cpu(), y.cpu()) for x, y in zip(a, b)]
    print(f'{what}, relative max |Δ| per set (class logits, then mask logits):',
          ['%.1e' % e for e in errors], f'; attention-mask pixels flipped: '
          f'{masks.flipped} of {masks.pixels}, at most {masks.margin:.1e} from the '
          'threshold (logit)')
    assert len(errors) == 20 and max(errors) < 1e-4
    assert masks.flipped <= 1e-4 * masks.pixels and masks.margin < 1e-3


def test_r50_on_cuda_equals_cpu(no_tf32, monkeypatch):
    """All 10 prediction sets of the R-50 COCO-panoptic model, same weights,
    CUDA (mmcv's kernel) vs CPU (the sparse form): within 1e-4 relative, on
    the same attention masks; the masks differ only at pixels within 1e-3
    of the threshold."""
    model = _r50()
    inputs, samples = _batch()
    masks = SameAttentionMasks(monkeypatch)
    cpu = _sets(model, inputs, samples)
    model.cuda()
    masks.replay()
    gpu = _sets(model, inputs.cuda(), [s.to('cuda') for s in samples])
    _compare_sets(gpu, cpu, masks, 'CUDA vs CPU')


def test_fast_paths_on_vs_off_on_cuda(no_tf32, monkeypatch):
    from m2f_mm.ops import fast_paths
    model = _r50().cuda()
    inputs, samples = _batch()
    inputs, samples = inputs.cuda(), [s.to('cuda') for s in samples]
    masks = SameAttentionMasks(monkeypatch)
    fast = _sets(model, inputs, samples)
    masks.replay()
    with fast_paths(False):
        plain = _sets(model, inputs, samples)
    _compare_sets(fast, plain, masks, 'fast vs plain paths on CUDA')


def _small_model(seed=0):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from reference_models import ours_cfg
    register_all_modules(init_default_scope=False)
    torch.manual_seed(seed)
    model = MODELS.build(ours_cfg(num_layers=6, feat=64, num_points=1024))
    model.init_weights()
    return model.cuda()


def _train_losses(model, dtype, steps=20):
    """Losses of ``steps`` AdamW steps on one fixed batch, forward and loss
    under CUDA autocast in ``dtype`` (None: float32), the loss points drawn
    from the same seeded stream."""
    samples = [make_sample(128, 128, seed=s).to('cuda') for s in (1, 2)]
    torch.manual_seed(1)
    images = torch.randn(2, 3, 128, 128, device='cuda')
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler('cuda', enabled=dtype == torch.float16)
    model.panoptic_head.criterion.generator = torch.Generator().manual_seed(0)
    model.train()
    losses, applied = [], []
    for _ in range(steps):
        with torch.autocast('cuda', dtype=dtype or torch.float32, enabled=dtype is not None):
            parts = model.loss(images, samples)
        loss = sum(v for k, v in parts.items() if 'loss' in k)
        optim.zero_grad()
        scaler.scale(loss).backward()
        scale = scaler.get_scale()
        scaler.step(optim)
        scaler.update()
        losses.append(float(loss))
        # dynamic loss scaling skips a step whose gradients overflowed
        applied.append(not scaler.is_enabled() or scaler.get_scale() >= scale)
    return losses, applied


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_mixed_precision_training_follows_float32(dtype, no_tf32):
    """Each step's loss within 2% of float32's after as many applied
    optimizer steps (float16's dynamic loss scale skips the first steps,
    whose scaled gradients overflow, and lowers the scale)."""
    base = _small_model()
    fp32, _ = _train_losses(copy.deepcopy(base), None)
    amp, applied = _train_losses(copy.deepcopy(base), dtype)
    done = [sum(applied[:i]) for i in range(len(amp))]  # steps applied before i
    print(dtype, 'float32', ['%.3f' % x for x in fp32], 'amp', ['%.3f' % x for x in amp],
          'skipped steps', applied.count(False))
    assert all(torch.isfinite(torch.tensor(amp)))
    assert applied.count(False) <= 5 and (dtype == torch.float16 or all(applied))
    for i, loss in enumerate(amp):
        assert loss == pytest.approx(fp32[done[i]], rel=0.02), (i, fp32, amp)
    assert amp != fp32  # the forward really ran in reduced precision


def _deform_inputs(dtype, seed=0):
    """Value in ``dtype``; locations and weights in float32, as autocast
    leaves them (a float16 location can sit exactly on a pixel, where
    bilinear sampling has a kink and each implementation picks a side for
    the location gradient)."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(32, 32), (16, 16), (8, 8)]
    nv = sum(h * w for h, w in shapes)
    value = torch.randn(2, nv, 8, 32, generator=g).to('cuda', dtype)
    loc = torch.rand(2, 300, 8, 3, 4, 2, generator=g) * 1.1 - 0.05
    attn = torch.rand(2, 300, 8, 3, 4, generator=g).softmax(-1)
    return shapes, [value, loc.cuda(), attn.cuda()]


@pytest.mark.parametrize('impl', ['mmcv', 'gather'])
@pytest.mark.parametrize('dtype,tol', [(torch.float32, 1e-5), (torch.float16, 2e-3),
                                       (torch.bfloat16, 1.6e-2)])
def test_deformable_attention_cuda_paths_equal_reference(impl, dtype, tol, monkeypatch):
    """Output and all three gradients against the float64 reference on the
    same (rounded) inputs; relative to the largest magnitude."""
    mod = importlib.import_module('m2f_mm.ops.ms_deform_attn')
    from m2f_mm.ops import deform_attn_impl, ms_deform_attn, ms_deform_attn_reference
    shapes, inputs = _deform_inputs(dtype)
    inputs = [t.requires_grad_() for t in inputs]
    exact = [t.detach().double().requires_grad_() for t in inputs]
    want = {'mmcv': 'mmcv' if dtype == torch.float32 else 'mmcv_float32',
            'gather': 'gather'}[impl]
    assert deform_attn_impl('cuda', dtype, True, impl == 'gather') == want
    monkeypatch.setattr(mod, 'current_deform_attn_impl', lambda v: want)
    out = ms_deform_attn(inputs[0], shapes, inputs[1], inputs[2])
    ref = ms_deform_attn_reference(exact[0], shapes, exact[1], exact[2])
    assert out.dtype == dtype
    w = torch.randn(ref.shape, device='cuda', dtype=torch.float64)
    grads = torch.autograd.grad((out.double() * w).sum(), inputs)
    grads_ref = torch.autograd.grad((ref * w).sum(), exact)
    errors = [_rel(out.double(), ref)] + [_rel(a.double(), b)
                                          for a, b in zip(grads, grads_ref)]
    print(impl, dtype, 'output, value, location, weight grads:',
          ['%.1e' % e for e in errors])
    assert max(errors) < tol


@pytest.fixture(scope='module')
def toy_data(tmp_path_factory):
    from make_toy_dataset import make_toy_dataset
    root = tmp_path_factory.mktemp('toy_cuda')
    make_toy_dataset(str(root), num_train=8, num_val=4, size=64, seed=5)
    return str(root) + '/'


def _options(data, iters=20, deterministic=False):
    return [f'train_dataloader.dataset.data_root={data}',
            f'val_dataloader.dataset.data_root={data}',
            f'test_dataloader.dataset.data_root={data}',
            f'train_cfg.max_iters={iters}', 'train_cfg.val_interval=1000',
            f'default_hooks.checkpoint.interval={iters}',
            'default_hooks.logger.interval=5', 'train_dataloader.batch_size=2',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
            'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
            f'val_evaluator.0.ann_file={data}annotations/panoptic_val.json',
            f'val_evaluator.0.seg_prefix={data}annotations/panoptic_val/',
            f'val_evaluator.1.ann_file={data}annotations/instances_val.json',
            f'test_evaluator.0.ann_file={data}annotations/panoptic_val.json',
            f'test_evaluator.0.seg_prefix={data}annotations/panoptic_val/',
            f'test_evaluator.1.ann_file={data}annotations/instances_val.json',
            f'randomness.deterministic={deterministic}']


@pytest.mark.parametrize('amp', [[], ['--amp'], ['--amp', '--amp-dtype', 'bfloat16']],
                         ids=['fp32', 'fp16', 'bf16'])
def test_train_and_test_tools_on_cuda(toy_data, tmp_path, amp):
    import test as test_tool
    import train
    work = tmp_path / 'w'
    train.main([PANOPTIC, '--work-dir', str(work), *amp, '--cfg-options',
                *_options(toy_data)])
    ckpt = work / 'iter_20.pth'
    assert ckpt.is_file()
    state = torch.load(ckpt, map_location='cpu', weights_only=False)['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    test_args = [PANOPTIC, str(ckpt), '--work-dir', str(tmp_path / 't')]
    if amp:
        test_args += ['--amp', '--amp-dtype', 'bfloat16' if 'bfloat16' in amp else 'float16']
    metrics = test_tool.main(test_args + ['--cfg-options', *_options(toy_data)])
    assert 'coco_panoptic/PQ' in metrics and 'coco/segm_mAP' in metrics
    print('amp', amp, {k: metrics[k] for k in ('coco_panoptic/PQ', 'coco/segm_mAP')})


def test_deterministic_training_repeats_bit_for_bit(toy_data, tmp_path):
    """Two deterministic runs of tools/train.py on CUDA give the same
    weights bit for bit, and no op was reported non-deterministic."""
    import warnings

    import train
    from m2f_mm.utils.determinism import log_nondeterministic_ops
    states = []
    # pytest's settings ignore UserWarnings: let PyTorch's reach the log here
    warnings.filterwarnings('always', message='.*deterministic implementation')
    try:
        for run in range(2):
            work = tmp_path / f'run{run}'
            train.main([PANOPTIC, '--work-dir', str(work), '--cfg-options',
                        *_options(toy_data, iters=10, deterministic=True)])
            states.append(torch.load(work / 'iter_10.pth', map_location='cpu',
                                     weights_only=False)['state_dict'])
        named = log_nondeterministic_ops().seen
    finally:
        torch.use_deterministic_algorithms(False)
    differ = [k for k in states[0] if not torch.equal(states[0][k], states[1][k])]
    print('ops named non-deterministic:', sorted(named), '; tensors that differ:',
          len(differ), 'of', len(states[0]))
    assert not differ, differ[:5]


def test_mmcv_custom_op_equals_mmcv_function():
    """``m2f_mm::ms_deform_attn_mmcv`` (what torch.compile sees) makes
    mmcv's own extension calls: the output equals mmcv's
    ``MultiScaleDeformableAttnFunction``'s exactly, the three gradients to
    float32 rounding (the backward accumulates with atomics), and the op passes
    torch.library's schema, fake and autograd checks on CUDA."""
    from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction

    from m2f_mm.ops.ms_deform_attn_mmcv import ms_deform_attn_mmcv
    from m2f_mm.ops.ms_deform_attn_sparse import flat_shapes
    shapes, inputs = _deform_inputs(torch.float32)
    ours_in = [t.clone().requires_grad_() for t in inputs]
    theirs_in = [t.clone().requires_grad_() for t in inputs]
    spatial = torch.tensor(shapes, dtype=torch.long, device='cuda')
    sizes = spatial.prod(1)
    start = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    ours = ms_deform_attn_mmcv(ours_in[0], shapes, ours_in[1], ours_in[2], 64)
    theirs = MultiScaleDeformableAttnFunction.apply(
        theirs_in[0], spatial, start, theirs_in[1], theirs_in[2], 64)
    w = torch.randn_like(ours)
    grads = torch.autograd.grad((ours * w).sum(), ours_in)
    grads_ref = torch.autograd.grad((theirs * w).sum(), theirs_in)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b)
    torch.library.opcheck(torch.ops.m2f_mm.ms_deform_attn_mmcv.default,
                          (ours_in[0], flat_shapes(shapes), ours_in[1], ours_in[2], 64),
                          test_utils=('test_schema', 'test_faketensor',
                                      'test_autograd_registration'))


@pytest.mark.parametrize('fast', [True, False])
def test_compiled_eval_forward_on_cuda_equals_eager(fast, no_tf32):
    """torch.compile (Inductor) of backbone → pixel decoder → decoder on
    CUDA: one graph, no break, outputs equal eager to 1e-4 (Inductor
    fuses and reorders float32 sums)."""
    from m2f_mm.ops import fast_paths
    model = _small_model().cuda().eval()
    x = torch.randn(2, 3, 256, 256, device='cuda')

    def network(inputs):
        cls, masks = model.panoptic_head(model.extract_feat(inputs), embeddings=True)
        return cls[-1], masks.full(-1)

    torch._dynamo.reset()
    with fast_paths(fast), torch.no_grad():
        explained = torch._dynamo.explain(network)(x)
        assert explained.graph_break_count == 0, [
            r.reason.splitlines()[0] for r in explained.break_reasons]
        torch._dynamo.reset()
        eager = network(x)
        compiled = torch.compile(network)(x)
    for a, b in zip(compiled, eager):
        assert _rel(a, b) < 1e-4, _rel(a, b)


def _toy_model_and_zoo_optim():
    """The quickstart's R-18 model on CUDA and the R-50 zoo config's
    optim_wrapper (merged groups, fused AdamW, clipping at 0.01)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from m2f_mm.registry import MODELS
    cfg = Config.fromfile(PANOPTIC)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).cuda()
    optim = Config.fromfile(os.path.join(
        REPO, 'configs/mask2former_r50_coco-panoptic.py')).optim_wrapper.to_dict()
    return model, optim


@pytest.mark.parametrize('impl', [dict(foreach=True), dict(fused=True)])
def test_grouped_optimizer_steps_as_per_parameter_groups_on_cuda(impl):
    """On CUDA, AdamW over the merged groups (multi-tensor or fused) moves
    the weights as mmengine's one group per parameter does."""
    from mmengine.optim import DefaultOptimWrapperConstructor
    from m2f_mm.engine import GroupedOptimWrapperConstructor
    model, optim = _toy_model_and_zoo_optim()
    optim.pop('constructor')
    optim['optimizer'].pop('fused')  # mmengine's default there: foreach on CUDA
    paramwise = optim.pop('paramwise_cfg')
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    per_param = DefaultOptimWrapperConstructor(
        copy.deepcopy(optim), paramwise)(a)
    optim['optimizer'].update(impl)
    grouped = GroupedOptimWrapperConstructor(optim, paramwise)(b)
    assert len(grouped.optimizer.param_groups) <= 5
    for seed in range(3):
        g = torch.Generator(device='cuda').manual_seed(seed)
        for pa, pb in zip(a.parameters(), b.parameters()):
            pa.grad = torch.randn(pa.shape, device='cuda', generator=g)
            pb.grad = pa.grad.clone()
        per_param.step()
        grouped.step()
        per_param.zero_grad()
        grouped.zero_grad()
    # clipping sums the per-tensor norms in the merged order: a rounding
    tol = 2e-7 if 'foreach' in impl else 1e-6
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert float((pa - pb).abs().max()) <= tol, name


def test_zoo_optimizer_under_fp16_loss_scaling():
    """The zoo schedules' optimizer (merged groups, fused AdamW, clipping)
    through mmengine's AmpOptimWrapper, as `tools/train.py --amp` builds it:
    the GradScaler hands the fused kernel its scale, the steps apply, and
    the weights stay finite."""
    from mmengine.optim import build_optim_wrapper
    from m2f_mm.engine import amp_optim_wrapper_cfg
    model, optim = _toy_model_and_zoo_optim()
    wrapper = build_optim_wrapper(model, amp_optim_wrapper_cfg(optim, 'cuda', 'float16'))
    assert type(wrapper).__name__ == 'AmpOptimWrapper'
    assert wrapper.optimizer.defaults['fused'] and len(wrapper.optimizer.param_groups) <= 5
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(3):
        with wrapper.optim_context(model):
            loss = sum((p.float() ** 2).sum() for p in model.parameters()) * 1e-3
        wrapper.update_params(loss)
    moved = sum(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert moved > 100
    assert all(torch.isfinite(p).all() for p in model.parameters())
