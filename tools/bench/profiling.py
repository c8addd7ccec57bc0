"""Where our train step goes: wall time by stage, and torch.profiler's
table by op."""
import contextlib
import functools
import time
from collections import Counter, defaultdict
from typing import Callable, Dict, Tuple

import torch

from . import NAMES
from .precision import tf32_state
from .report import markdown_table
from .runner import Bench
from .timing import median, synchronizer


@contextlib.contextmanager
def timed_calls(spent: Dict[str, float], patches,
                sync: Callable[[], None] = lambda: None):
    """Add the wall time of every call of ``getattr(obj, attr)`` to
    ``spent[label]`` inside the block, for (obj, attr, label) in ``patches``
    (an instance attribute shadows the method; a module's ``forward`` too).
    ``sync`` is called before and after each call, so that asynchronous CUDA
    work is counted in the stage that queued it."""
    for obj, attr, label in patches:
        def timed(*args, _fn=getattr(obj, attr), _label=label, **kwargs):
            sync()
            t0 = time.perf_counter()
            try:
                return _fn(*args, **kwargs)
            finally:
                sync()
                spent[_label] += time.perf_counter() - t0
        setattr(obj, attr, timed)
    try:
        yield
    finally:
        for obj, attr, _ in patches:
            delattr(obj, attr)


def profile_train_step(bench: Bench, repeats: int = 1) -> Dict[str, float]:
    """Seconds per stage of OUR train step: backbone, pixel decoder,
    Transformer decoder (with the prediction heads), matching, loss (without
    matching), backward and optimizer step; medians over ``repeats``. Under
    the bench's autocast, like its train step."""
    model = bench.model
    head = model.panoptic_head
    patches = [(model, 'extract_feat', 'backbone'),
               (head.pixel_decoder, 'forward', 'pixel decoder'),
               (head.transformer_decoder, 'forward', 'head forward'),
               (head.criterion, '_match', 'matching'),
               (head.criterion, 'forward', 'loss')]
    sync = synchronizer(bench.inputs.device)
    bench.train_step()  # warm-up
    rounds = defaultdict(list)
    for _ in range(repeats):
        spent = defaultdict(float)
        model.train()
        with timed_calls(spent, patches, sync):
            sync()
            t0 = time.perf_counter()
            with bench.autocast():
                loss = bench.loss()
            sync()
            t1 = time.perf_counter()
        bench.backward(loss)
        sync()
        t2 = time.perf_counter()
        bench.optimizer_step()
        sync()
        t3 = time.perf_counter()
        stages = {
            'backbone': spent['backbone'],
            'pixel decoder': spent['pixel decoder'],
            'Transformer decoder + predictions': spent['head forward'],
            'matching (costs + Hungarian)': spent['matching'],
            'loss without matching': spent['loss'] - spent['matching'],
            'targets and glue': (t1 - t0) - spent['backbone'] -
                spent['pixel decoder'] - spent['head forward'] - spent['loss'],
            'backward': t2 - t1,
            'optimizer step': t3 - t2,
        }
        for k, v in stages.items():
            rounds[k].append(v)
    return {k: median(v) for k, v in rounds.items()}


def op_profile(bench: Bench, row_limit: int = 25) -> str:
    """torch.profiler's table of the ops of one train step: CPU time, and
    on a GPU the kernels' time too (sorted by it)."""
    from torch.profiler import ProfilerActivity, profile
    cuda = bench.inputs.device.type == 'cuda'
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    bench.train_step()
    with profile(activities=activities) as prof:
        bench.train_step()
    return prof.key_averages().table(
        sort_by='self_device_time_total' if cuda else 'self_cpu_time_total',
        row_limit=row_limit)


def profile_report(bench: Bench, args) -> str:
    """Our train step by stage, then by op, as Markdown."""
    stages = profile_train_step(bench, args.repeats)
    total = sum(stages.values())
    table = markdown_table(['stage', 'seconds', 'share'], [
        [k, f'{v:.3f}', f'{100 * v / total:.0f}%'] for k, v in stages.items()])
    precision = bench.amp or 'fp32'
    return (f'## Our train step by stage ({args.size}², batch {args.batch}, '
            f'{args.device}, {args.threads} threads, {precision})\n\n'
            f'{tf32_state(getattr(args, "tf32", None))}\n\n{table}\n\n'
            f'## By op (one train step)\n\n{op_profile(bench)}')


PHASES = ('forward + loss', 'backward', 'optimizer')


def _is_top_level(event) -> bool:
    """No other aten op called this one (profiler frames between them,
    such as autograd nodes, do not count)."""
    parent = event.cpu_parent
    while parent is not None and not parent.name.startswith('aten::'):
        parent = parent.cpu_parent
    return parent is None


def _aten_counts(prof) -> Tuple[int, int, Counter]:
    """(all aten ops, nested calls included; top-level aten ops only; the
    top-level ones by name) of one profile. A top-level op is one no other
    aten op called: what the model and autograd ask for, before an op's
    own decomposition."""
    nested = 0
    top = Counter()
    for event in prof.events():
        if not event.name.startswith('aten::'):
            continue
        nested += 1
        if _is_top_level(event):
            top[event.name] += 1
    return nested, sum(top.values()), top


# ops that make a tensor without computing: no kernel on any device
ALLOCATIONS = frozenset(('aten::empty', 'aten::empty_like', 'aten::empty_strided',
                         'aten::new_empty', 'aten::new_empty_strided'))


@functools.lru_cache(maxsize=None)
def is_view(name: str) -> bool:
    """Whether every tensor overload of the aten op ``name`` (its first
    argument a Tensor: ``slice`` also has overloads on lists and strings)
    returns only aliases of its inputs that it does not write: a view
    (``select``, ``slice``, ``detach``, ``expand`` ...), which launches no
    kernel."""
    packet = getattr(torch.ops.aten, name.split('::', 1)[1], None)
    if packet is None:
        return False
    schemas = [getattr(packet, o)._schema for o in packet.overloads()]
    schemas = [s for s in schemas
               if s.arguments and isinstance(s.arguments[0].type, torch.TensorType)]
    return bool(schemas) and all(
        s.returns and all(r.alias_info is not None and not r.alias_info.is_write
                          for r in s.returns) for s in schemas)


def computing_ops(prof) -> int:
    """Top-level aten ops that compute: those with an op other than a view
    or an allocation in their call tree (``to`` counts when it copies,
    ``reshape`` when it copies, ``select`` never). On CUDA that is about
    the kernels the step launches, as a count on CPU."""
    def computes(event) -> bool:
        if event.name.startswith('aten::') and not (
                is_view(event.name) or event.name in ALLOCATIONS):
            return True
        return any(computes(child) for child in event.cpu_children)
    return sum(1 for e in prof.events() if e.name.startswith('aten::')
               and _is_top_level(e) and computes(e))


LAUNCHES = ('cudaLaunchKernel', 'cudaLaunchKernelExC', 'cuLaunchKernel', 'cuLaunchKernelEx')
SYNCS = ('cudaStreamSynchronize', 'cudaDeviceSynchronize', 'cudaEventSynchronize')


def cuda_runtime_counts(events) -> Tuple[int, int]:
    """(kernel launches, host synchronisations) among a profile's CUDA
    runtime events (none on CPU)."""
    names = Counter(event.name for event in events)
    return sum(names[n] for n in LAUNCHES), sum(names[n] for n in SYNCS)


def count_aten_ops(bench: Bench) -> Dict[str, Tuple]:
    """aten operators of one train step by phase (:data:`PHASES`), as
    (nested calls included, top-level only, top-level by name, CUDA kernel
    launches, CUDA host synchronisations, top-level ones that compute:
    :func:`computing_ops`), with the fast paths off: on
    CPU that is the path CUDA takes, and the count follows the kernels it
    launches; on CUDA the launches and synchronisations are counted too.
    The bench's AdamW is the multi-tensor one CUDA picks by default, or a
    config's fused one (see :class:`Bench`). ``'inference'``: the same
    counts of one :meth:`Bench.predict` (forward and fusion)."""
    from torch.profiler import ProfilerActivity, profile

    from m2f_mm.ops import fast_paths
    activities = [ProfilerActivity.CPU]
    if bench.inputs.device.type == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    sync = synchronizer(bench.inputs.device)
    counts = {}

    def runtime(prof):
        return cuda_runtime_counts(prof.events())

    sync()
    with profile(activities=activities) as empty:
        pass
    # what the profiler itself adds (its own synchronisation at the end)
    base = runtime(empty)

    @contextlib.contextmanager
    def counted(phase):
        sync()  # earlier work is not this phase's
        with profile(activities=activities) as prof:
            yield
        launches, syncs = (max(0, n - b) for n, b in zip(runtime(prof), base))
        counts[phase] = _aten_counts(prof) + (launches, syncs, computing_ops(prof))

    with fast_paths(False):
        # inference first, on the weights every implementation starts from
        # (a train step moves them, and MMDet's fusion loops per detection)
        bench.predict()
        with counted('inference'):
            bench.predict()
        bench.train_step()
        bench.model.train()
        with counted(PHASES[0]), bench.autocast():
            loss = bench.loss()
        with counted(PHASES[1]):
            bench.backward(loss)  # of the scaled loss under fp16, as in a step
        with counted(PHASES[2]):
            bench.optimizer_step()  # with the config's clipping, if any
    return counts


def op_count_report(benches: Dict[str, Bench], args) -> str:
    """aten operators per train step of each implementation, by phase and
    in all, and per inference, as Markdown; the ratio columns are ours over
    each."""
    counts = {name: count_aten_ops(bench) for name, bench in benches.items()}
    ours = counts.get('m2f_mm')
    # (index in count_aten_ops' tuples, heading); the CUDA runtime's counts
    # only where there are any (on CUDA)
    kinds = [(0, 'aten ops, nested calls included'), (1, 'aten ops, top-level ops only'),
             (5, 'aten ops, top-level ops that compute (not views)')]
    if any(c[phase][3] for c in counts.values() for phase in PHASES):
        kinds += [(3, 'CUDA kernel launches'), (4, 'CUDA host synchronisations')]
    def ratio(name, mine, theirs):
        return '—' if name == 'm2f_mm' or not ours or not theirs else \
            f'{mine / theirs:.2f}×'
    tables = []
    for k, heading in kinds:
        def total(c):
            return sum(c[phase][k] for phase in PHASES)
        rows = []
        for name, c in counts.items():
            infer = c['inference'][k]
            rows.append([NAMES[name]] + [str(c[phase][k]) for phase in PHASES]
                        + [str(total(c)), ratio(name, ours and total(ours), total(c)),
                           str(infer), ratio(name, ours and ours['inference'][k], infer)])
        batch = next(iter(benches.values())).infer_batch
        tables.append(f'### {heading}\n\n' + markdown_table(
            ['implementation', *PHASES, 'train step', 'ours / it',
             f'inference (batch {batch})', 'ours / it'], rows))
    common = '\n'.join(
        f'- {NAMES[name]}: ' + ', '.join(
            f'{n} `{op[6:]}`' for op, n in c[PHASES[2]][2].most_common(6))
        for name, c in counts.items())
    return (f'aten operators per train step ({args.size}², batch {args.batch}, '
            f'{"small models" if args.small else "R-50"}, fast paths off, '
            f'{getattr(args, "optimizer", "plain")} optimizer)\n\n'
            + '\n\n'.join(tables)
            + f'\n\n### most frequent top-level ops of the optimizer step\n\n{common}')
