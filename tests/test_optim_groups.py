"""GroupedOptimWrapperConstructor: the parameter groups of mmengine's
constructor merged by setting. Every parameter keeps its learning rate and
weight decay, AdamW steps to the same weights, and a checkpoint written with
one group per parameter resumes into the merged groups."""
import copy
import glob
import logging
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import init_default_scope

from m2f_mm.engine import GroupedOptimWrapperConstructor, merge_param_groups
from m2f_mm.registry import MODELS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(REPO, 'configs/quickstart/mask2former_r18_toy-panoptic.py')
ZOO_R50 = os.path.join(REPO, 'configs/mask2former_r50_coco-panoptic.py')
SETTINGS = ('lr', 'weight_decay', 'betas', 'eps', 'amsgrad', 'foreach', 'fused')


@pytest.fixture(scope='module')
def model_and_cfg():
    """The R-18 quickstart model and the R-50 zoo config's optim_wrapper
    (backbone lr x0.1, no decay on norms and embeddings, clipping)."""
    cfg = Config.fromfile(QUICKSTART)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    optim = Config.fromfile(ZOO_R50).optim_wrapper.to_dict()
    assert optim.pop('constructor') == 'm2f_mm.GroupedOptimWrapperConstructor'
    assert optim['optimizer']['fused'] is True
    return model, optim


def _build(constructor, model, optim_cfg, **optimizer):
    cfg = copy.deepcopy(optim_cfg)
    if optimizer:  # instead of the config's fused AdamW
        cfg['optimizer'].pop('fused')
        cfg['optimizer'].update(optimizer)
    paramwise = cfg.pop('paramwise_cfg')
    return constructor(cfg, paramwise)(model)


def _settings(wrapper, model):
    """Each parameter's settings, by parameter name."""
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: tuple(str(g[k]) for k in SETTINGS)
            for g in wrapper.optimizer.param_groups for p in g['params']}


def test_merged_groups_keep_every_parameters_settings(model_and_cfg):
    model, optim = model_and_cfg
    per_param = _build(DefaultOptimWrapperConstructor, model, optim)
    grouped = _build(GroupedOptimWrapperConstructor, model, optim)
    n = len(list(model.parameters()))
    assert len(per_param.optimizer.param_groups) == n
    assert _settings(grouped, model) == _settings(per_param, model)
    assert sum(len(g['params']) for g in grouped.optimizer.param_groups) == n
    # backbone weights, backbone norms (decay x1 by the custom key), norms
    # and embeddings without decay, biases / the rest
    assert len(grouped.optimizer.param_groups) <= 5, [
        (g['lr'], g['weight_decay']) for g in grouped.optimizer.param_groups]
    # the first group is the first parameter's (what mmengine logs as `lr`)
    first = next(model.parameters())
    assert grouped.optimizer.param_groups[0]['params'][0] is first


def test_merge_keeps_first_appearance_order_and_reports_origin():
    a, b, c, d = (torch.nn.Parameter(torch.zeros(1)) for _ in range(4))
    groups = [dict(params=[a], lr=1.), dict(params=[b], lr=2.),
              dict(params=[c, d], lr=1.)]
    merged, order, firsts = merge_param_groups(groups)
    assert [g['lr'] for g in merged] == [1., 2.]
    assert merged[0]['params'] == [a, c, d] and merged[1]['params'] == [b]
    assert order == [0, 2, 3, 1] and firsts == [0, 1]
    # values that are not hashable (tensors, lists, dicts) merge by value
    groups = [dict(params=[a], x=torch.tensor([1., 2.]), y=[[1]], z=dict(k=[1])),
              dict(params=[b], x=torch.tensor([1., 2.]), y=[[1]], z=dict(k=[1])),
              dict(params=[c], x=torch.tensor([1., 3.]), y=[[1]], z=dict(k=[1]))]
    merged, _, _ = merge_param_groups(groups)
    assert [len(g['params']) for g in merged] == [2, 1]


def _random_grads(model, seed):
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g) if p.requires_grad else None


def _steps(wrapper, model, seeds):
    for seed in seeds:
        _random_grads(model, seed)
        wrapper.step()  # clips at 0.01 (L2 of the whole model), then AdamW
        wrapper.zero_grad()


@pytest.mark.parametrize('clip', [False, True])
@pytest.mark.parametrize('impl', [dict(foreach=False), dict(foreach=True), dict(fused=True)])
def test_grouped_adamw_steps_as_per_parameter_groups(model_and_cfg, impl, clip):
    """Bit for bit without clipping. With it, the total gradient norm sums
    the same per-tensor norms in the merged groups' order, and each step
    may round a weight differently: at most one float32 rounding per step,
    at the magnitude the weight held (its value plus what AdamW moved it,
    under lr per step). One rounding of a weight near 2 is 2.4e-7."""
    model, optim = model_and_cfg
    optim = dict(optim, clip_grad=optim['clip_grad'] if clip else None)
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    per_param = _build(DefaultOptimWrapperConstructor, a, optim, **impl)
    grouped = _build(GroupedOptimWrapperConstructor, b, optim, **impl)
    steps = 3
    _steps(per_param, a, range(steps))
    _steps(grouped, b, range(steps))
    eps, lr = torch.finfo(torch.float32).eps, optim['optimizer']['lr']
    moved = 0
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        if clip:
            held = torch.maximum(pa.abs(), pb.abs()) + steps * lr
            assert bool(((pa - pb).abs() <= steps * eps * held).all()), name
        else:
            assert torch.equal(pa, pb), name
        moved += not torch.equal(pa, dict(model.named_parameters())[name])
    assert moved > 100  # the steps did move the weights


def test_per_parameter_checkpoint_resumes_into_merged_groups(model_and_cfg):
    model, optim = model_and_cfg
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    per_param = _build(DefaultOptimWrapperConstructor, a, optim)
    _steps(per_param, a, range(2))
    for group in per_param.optimizer.param_groups:  # as a scheduler would
        group['initial_lr'] = group['lr']
        group['lr'] *= 0.5
    saved = copy.deepcopy(per_param.state_dict())
    b.load_state_dict(a.state_dict())
    grouped = _build(GroupedOptimWrapperConstructor, b, optim)
    grouped.load_state_dict(saved)
    assert _settings(grouped, b) == _settings(per_param, a)
    assert all('initial_lr' in g for g in grouped.optimizer.param_groups)
    _steps(per_param, a, range(2, 4))
    _steps(grouped, b, range(2, 4))
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert float((pa - pb).abs().max()) <= 2e-7, name  # clipping: see above
    # and a merged checkpoint loads as it is
    c = copy.deepcopy(b)
    again = _build(GroupedOptimWrapperConstructor, c, optim)
    again.load_state_dict(grouped.state_dict())
    assert _settings(again, c) == _settings(grouped, b)


def test_logs_one_line_per_group_not_per_parameter(model_and_cfg):
    model, optim = model_and_cfg
    logger = MMLogger.get_current_instance()
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        wrapper = _build(GroupedOptimWrapperConstructor, model, optim, foreach=True)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert not [m for m in lines if m.startswith('paramwise_options')
                or 'is skipped since' in m]
    assert [m for m in lines if m.startswith('AdamW (foreach): ')
            and 'groups merged into' in m], lines
    groups = [m for m in lines if m.startswith('parameter group:')]
    assert len(groups) == len(wrapper.optimizer.param_groups), lines
    assert 'first backbone.conv1.weight' in groups[0] and 'lr=1e-05' in groups[0]


def test_every_config_with_an_optimizer_uses_the_grouped_constructor():
    paths = [p for p in glob.glob(os.path.join(REPO, 'configs', '**', '*.py'), recursive=True)
             if '_base_' not in p]
    checked = 0
    for path in paths:
        optim = Config.fromfile(path).get('optim_wrapper')
        if optim is None:
            continue
        assert optim.get('constructor') == 'm2f_mm.GroupedOptimWrapperConstructor', path
        hooks = [h['type'] for h in Config.fromfile(path).get('custom_hooks', [])]
        assert 'm2f_mm.MergedGroupsResumeHook' in hooks, path
        assert 'm2f_mm.LogVarsToHostHook' in hooks, path
        checked += 1
    assert checked >= 30


def test_zoo_optimizer_builds_and_steps_through_the_runners_wrappers(model_and_cfg):
    """As tools/train.py builds it: mmengine's build_optim_wrapper from the
    zoo config (the constructor resolved by its m2f_mm name), plain and with
    `--amp` on CPU (bfloat16 autocast); the fused AdamW steps."""
    from mmengine.optim import build_optim_wrapper

    from m2f_mm.engine import amp_optim_wrapper_cfg
    model, _ = model_and_cfg
    optim = Config.fromfile(ZOO_R50).optim_wrapper.to_dict()
    for cfg in (optim, amp_optim_wrapper_cfg(optim, 'cpu')):
        m = copy.deepcopy(model)
        wrapper = build_optim_wrapper(m, copy.deepcopy(cfg))
        assert wrapper.optimizer.defaults['fused'] and len(wrapper.optimizer.param_groups) <= 5
        before = [p.detach().clone() for p in m.parameters()]
        for _ in range(2):
            with wrapper.optim_context(m):
                loss = sum((p.float() ** 2).sum() for p in m.parameters()) * 1e-3
            wrapper.update_params(loss)
        moved = sum(not torch.equal(a, p) for a, p in zip(before, m.parameters()))
        assert moved > 100 and all(torch.isfinite(p).all() for p in m.parameters())


def test_per_parameter_checkpoint_keeps_the_fused_adamw_and_its_schedulers(model_and_cfg):
    """A per-parameter checkpoint (foreach AdamW, a cosine schedule with
    ``eta_min_ratio``, which steps from per-group base values) resumes into
    the merged groups with the fused AdamW still fused, and the learning
    rates follow the straight run's."""
    from types import SimpleNamespace

    from mmengine.optim import CosineAnnealingLR

    from m2f_mm.engine import MergedGroupsResumeHook
    model, optim = model_and_cfg
    optim = dict(optim, clip_grad=None)

    def scheduler(wrapper):
        return CosineAnnealingLR(wrapper, T_max=6, eta_min_ratio=0.1, by_epoch=False)

    a, b = copy.deepcopy(model), copy.deepcopy(model)
    per_param = _build(DefaultOptimWrapperConstructor, a, optim, foreach=True)
    sched_a = scheduler(per_param)
    for seed in range(3):
        _steps(per_param, a, [seed])
        sched_a.step()
    checkpoint = copy.deepcopy(dict(optimizer=per_param.state_dict(),
                                    param_schedulers=[sched_a.state_dict()]))
    b.load_state_dict(a.state_dict())
    grouped = _build(GroupedOptimWrapperConstructor, b, optim)  # fused, as configured
    sched_b = scheduler(grouped)
    MergedGroupsResumeHook().after_load_checkpoint(
        SimpleNamespace(optim_wrapper=grouped), checkpoint)
    grouped.load_state_dict(checkpoint['optimizer'])
    sched_b.load_state_dict(checkpoint['param_schedulers'][0])
    assert all(g['fused'] for g in grouped.optimizer.param_groups)
    # one per group, and mmengine's OptimWrapper's base settings last
    assert len(sched_b.base_values) == len(grouped.optimizer.param_groups) + 1
    for seed in range(3, 6):
        _steps(per_param, a, [seed])
        sched_a.step()
        _steps(grouped, b, [seed])
        sched_b.step()
        assert _settings(grouped, b) == {
            n: v[:5] + ('None', 'True') for n, v in _settings(per_param, a).items()}
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert float((pa - pb).abs().max()) <= 1e-7, name


def test_another_models_checkpoint_is_refused_in_one_line(model_and_cfg):
    """A per-parameter checkpoint whose parameters come in another order
    (MMDetection's Mask2Former lists them so) does not load state into the
    wrong parameters."""
    model, optim = model_and_cfg
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    per_param = _build(DefaultOptimWrapperConstructor, a, optim)
    _steps(per_param, a, [0])
    saved = per_param.state_dict()
    ids = [g['params'][0] for g in saved['param_groups']]
    saved['state'] = {ids[i]: saved['state'][ids[-1 - i]] for i in range(len(ids))
                      if ids[-1 - i] in saved['state']}  # reversed order
    grouped = _build(GroupedOptimWrapperConstructor, b, optim)
    with pytest.raises(ValueError, match=r'^optimizer state of parameter \d+ in the '
                       r'checkpoint .* does not fit the model'):
        grouped.load_state_dict(saved)
    # a state dict with one group more than the merged ones is torch's to refuse
    extra = copy.deepcopy(grouped.state_dict())
    extra['param_groups'].append(dict(extra['param_groups'][-1], params=[10 ** 6]))
    with pytest.raises(ValueError, match='different number of parameter groups'):
        grouped.load_state_dict(extra)
