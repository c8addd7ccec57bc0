"""A tiny smoke run of tools/benchmark.py and its parts (tools/bench/):
small models, a 64×64 batch of one image, one round; no timing asserts."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), 'tools'))
import benchmark  # noqa: E402
from child_env import child_env  # noqa: E402
from bench import NAMES, NUM_THINGS  # noqa: E402
from bench.batch import synthetic_batch  # noqa: E402
from bench.equality import output_differences  # noqa: E402
from bench.memory import worker_command  # noqa: E402
from bench.models import hf_available  # noqa: E402
from bench.precision import set_tf32  # noqa: E402
from bench.profiling import op_count_report, profile_train_step  # noqa: E402
from bench.report import header, results_table  # noqa: E402
from bench.runner import Bench, build_benches, warm_up  # noqa: E402
from bench.timing import time_alternating  # noqa: E402
from synthetic import RandRecorder  # noqa: E402


@pytest.fixture(scope='module')
def benches():
    # one thread: tiny ops on two threads crawl when other processes load the CPUs
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    impls = ['m2f_mm', 'mmdet'] + (['hf'] if hf_available() else [])
    yield build_benches(impls, size=64, batch=1, small=True)
    torch.set_num_threads(threads)


def test_synthetic_batch_has_things_and_stuff():
    inputs, samples = synthetic_batch(64, 2, num_things=10, num_stuff=5)
    assert inputs.shape == (2, 3, 64, 64)
    for s in samples:
        assert len(s.gt_instances.labels) == 10
        assert (s.gt_instances.labels < NUM_THINGS).all()
        stuff = torch.unique(s.gt_sem_seg.sem_seg)
        assert (stuff >= NUM_THINGS).sum() >= 1


def test_rand_recorder_draws_on_the_cpu_and_moves():
    """MMDet asks for its points on the masks' device; the recorder draws
    them from the CPU generator (one replayable stream on any device) and
    hands them over on the device asked for (the meta device here)."""
    torch.manual_seed(3)
    plain = torch.rand
    with RandRecorder() as rec:
        a = torch.rand(2, 5, device='meta')
        b = torch.rand((4,), device='cpu', requires_grad=True)
        own = torch.rand(3, generator=torch.Generator().manual_seed(7))
    assert a.device.type == 'meta' and a.shape == (2, 5)
    assert b.device.type == 'cpu' and b.requires_grad
    stream = torch.cat([d.flatten() for d in rec.draws[:2]])
    assert all(d.device.type == 'cpu' for d in rec.draws)
    assert torch.equal(stream, torch.rand(14, generator=torch.Generator().manual_seed(3)))
    # an explicit generator is honoured, not the global one
    assert torch.equal(own, torch.rand(3, generator=torch.Generator().manual_seed(7)))
    assert torch.rand is plain


def test_outputs_equal_mmdet_on_shared_weights(benches):
    ours, ref = benches['m2f_mm'], benches['mmdet']
    diffs = output_differences(ours.model, ref.model, ours.inputs, ours.samples)
    assert diffs['logits'] < 1e-4
    assert diffs['num_loss_terms'] == 30 and diffs['losses'] < 1e-4
    assert diffs['panoptic_pixels_differ'] == 0


def test_table_has_a_row_per_implementation(benches):
    fns = {k: b.train_step for k, b in benches.items()}
    train = time_alternating(fns, repeats=1, warmup=0)
    infer = time_alternating({k: b.predict for k, b in benches.items()},
                             repeats=1, warmup=0)
    memory = {k: 100.0 for k in benches}
    table = results_table(train, infer, memory)
    lines = table.splitlines()
    assert lines[0].startswith('| implementation |') and lines[1].startswith('| ---')
    assert len(lines) == 2 + len(benches)
    for impl in benches:
        assert any(line.startswith(f'| {NAMES[impl]} |') for line in lines)
    assert '1.00×' in table  # ours / MMDet's memory
    # images/s columns; a failed implementation keeps its row, marked
    table = results_table(train, {'m2f_mm': infer['m2f_mm']}, memory, batch=1,
                          infer_batch=1, failed_infer={'mmdet'},
                          nan_loss={'mmdet': 'NaN loss in 1 of 1 train steps'})
    head, _, ours_row, mmdet_row = table.splitlines()[:4]
    assert '| train images/s |' in head and '| inference images/s |' in head
    cells = [c.strip() for c in mmdet_row.split('|')[1:-1]]
    assert cells[1].endswith('(NaN loss)') and cells[3] == 'failed'
    assert cells[4] == '—' and cells[7] == '—'  # no images/s, no ratio
    ours_cells = [c.strip() for c in ours_row.split('|')[1:-1]]
    assert float(ours_cells[2]) == pytest.approx(1 / train['m2f_mm'][0], abs=0.006)


def test_amp_bf16_train_step_on_cpu(benches, capsys):
    """--amp bf16 on the CPU: ours trains with a finite loss; MMDet's model
    either does too, or its failure is caught and named in one line."""
    amp = {k: Bench(k, b.model, b.inputs, b.samples, amp='bf16')
           for k, b in benches.items() if k in ('m2f_mm', 'mmdet')}
    failed = warm_up(amp, 'train_step')
    assert 'm2f_mm' not in failed
    assert len(amp['m2f_mm'].losses) == 1 and math.isfinite(amp['m2f_mm'].losses[0])
    assert amp['m2f_mm'].nonfinite_losses() == ''
    err = capsys.readouterr().err
    if 'mmdet' in failed:
        assert err.count('\n') == 1
        assert err.startswith(f'{NAMES["mmdet"]} failed under AMP: ')
    else:
        assert math.isfinite(amp['mmdet'].losses[0]) and err == ''


def test_warm_up_reports_a_failure_in_one_line(benches, capsys):
    class Broken(Bench):
        def predict(self):
            raise NotImplementedError('"kernel" not implemented for \'BFloat16\'\n'
                                      'more lines')
    b = benches['m2f_mm']
    broken = Broken('mmdet', b.model, b.inputs, b.samples, amp='bf16')
    assert warm_up({'mmdet': broken}, 'predict', rounds=2) == {
        'mmdet': 'NotImplementedError: "kernel" not implemented for \'BFloat16\''}
    assert capsys.readouterr().err == (
        f'{NAMES["mmdet"]} failed under AMP: NotImplementedError: "kernel" not '
        f'implemented for \'BFloat16\'\n')


def test_header_and_flags_reach_the_memory_worker():
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        args = benchmark.parse_args(['--small', '--size', '64', '--amp', 'bf16',
                                     '--tf32', 'off'])
        set_tf32(args.tf32)
        text = header(args)
        assert 'bf16 autocast' in text
        assert ('TF32: torch.backends.cuda.matmul.allow_tf32=False, '
                'torch.backends.cudnn.allow_tf32=False (--tf32 off).') in text
        cmd = worker_command('mmdet', 'train', args)
        for flag, value in (('--amp', 'bf16'), ('--tf32', 'off'), ('--device', 'cpu'),
                            ('--size', '64')):
            assert cmd[cmd.index(flag) + 1] == value
        assert '--small' in cmd
        default = benchmark.parse_args([])
        assert default.amp == 'none' and default.tf32 is None
        assert '(PyTorch defaults)' in header(default) and 'fp32' in header(default)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_device_cuda_without_cuda_is_a_parser_error(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        benchmark.parse_args(['--device', 'cuda'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert 'error: --device cuda: no CUDA device' in err.splitlines()[-1]


def test_profile_stages_and_peak_memory(benches):
    stages = profile_train_step(benches['m2f_mm'])
    for name in ('backbone', 'pixel decoder', 'matching (costs + Hungarian)',
                 'backward'):
        assert stages[name] >= 0
    # in a fresh process, as the benchmark measures: in a long test process
    # the kernel's high-water mark was seen not to move. 64 MiB is above
    # glibc's largest mmap threshold, so fresh pages, then freed
    script = ('import json, torch; from bench.memory import peak_rss_delta; r = {}\n'
              'with peak_rss_delta(r):\n'
              '    block = torch.ones(64 << 20, dtype=torch.uint8)\n'
              '    del block\n'
              'print(json.dumps(r))')
    tools = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'tools')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True,
                          text=True, cwd=tools, env=child_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])['peak_mib'] >= 60


def test_op_count_report(benches):
    args = type('Args', (), dict(size=64, batch=1, small=True))()
    report = op_count_report({k: benches[k] for k in ('m2f_mm', 'mmdet')}, args)
    *tables, common = report.split('### ')[1:]
    assert [t.splitlines()[0] for t in tables] == [
        'aten ops, nested calls included', 'aten ops, top-level ops only',
        'aten ops, top-level ops that compute (not views)']
    assert common.startswith('most frequent top-level ops of the optimizer step')
    assert '- m2f_mm (ours): ' in common and '`_foreach_' in common
    for table in tables:
        rows = [line.split('|')[2:-1] for line in table.splitlines()
                if line.startswith(('| m2f_mm', '| MMDetection'))]
        assert len(rows) == 2
        (*ours, ours_total, _, ours_infer, _), \
            (*theirs, theirs_total, ratio, theirs_infer, infer_ratio) = rows
        assert [int(n) for n in ours] and int(ours_total) == sum(map(int, ours))
        assert int(theirs_total) == sum(map(int, theirs))
        assert 0 < int(ours_total) < int(theirs_total)  # MMDet's per-image loops
        assert ratio.strip() == f'{int(ours_total) / int(theirs_total):.2f}×'
        # the same multi-tensor AdamW: same parameter count, same optimizer ops
        assert ours[2] == theirs[2]
        # inference: MMDet's fusion loops over segments and masks
        assert 0 < int(ours_infer) < int(theirs_infer)
        assert infer_ratio.strip() == f'{int(ours_infer) / int(theirs_infer):.2f}×'
    assert '| inference (batch 1) | ours / it |' in tables[0]


def test_config_optimizer_is_each_configs(benches):
    """--optimizer config: ours steps in merged groups with the fused AdamW,
    MMDet in one group per parameter, both clipping at 0.01; the train step
    runs, and MMDet's optimizer makes more ops than ours."""
    ours = Bench('m2f_mm', benches['m2f_mm'].model, benches['m2f_mm'].inputs,
                 benches['m2f_mm'].samples, optimizer='config')
    ref = Bench('mmdet', benches['mmdet'].model, benches['mmdet'].inputs,
                benches['mmdet'].samples, optimizer='config')
    trained = [p for p in ref.model.parameters() if p.requires_grad]
    assert len(ref.optimizer.param_groups) == len(trained)
    assert len(ours.optimizer.param_groups) <= 5
    assert ours.optimizer.defaults['fused'] and ref.optimizer.defaults['foreach']
    assert ours.clip == ref.clip == dict(max_norm=0.01, norm_type=2)
    for bench in (ours, ref):
        assert math.isfinite(bench.train_step())
    args = type('Args', (), dict(size=64, batch=1, small=True, optimizer='config'))()
    report = op_count_report(dict(m2f_mm=ours, mmdet=ref), args)
    assert 'config optimizer' in report.splitlines()[0]
    top = report.split('### ')[2]
    assert '`_fused_adamw_`' in report.split('### ')[-1]
    rows = [line.split('|')[2:-1] for line in top.splitlines()
            if line.startswith(('| m2f_mm', '| MMDetection'))]
    assert 0 < int(rows[0][2]) < int(rows[1][2])
    assert '--optimizer' in worker_command('m2f_mm', 'train', benchmark.parse_args(
        ['--optimizer', 'config']))
    with pytest.raises(SystemExit):
        benchmark.parse_args(['--optimizer', 'mine'])


def test_computing_ops_leave_out_views():
    """The 'top-level ops that compute' count: views and allocations are
    left out, an op that copies underneath (``contiguous`` of a transpose,
    ``to`` another dtype) is counted once."""
    from torch.profiler import profile

    from bench.profiling import computing_ops, is_view
    assert all(is_view(f'aten::{n}') for n in ('select', 'detach', 'expand', 'reshape',
                                               'view', 't', 'unbind', 'slice', 'split',
                                               'narrow', 'chunk'))
    assert not any(is_view(f'aten::{n}') for n in ('add_', 'mm', 'item', 'clone',
                                                   'index', 'no_such_op'))
    x = torch.ones(4, 3)
    # deterministic mode fills new memory (an earlier test may leave it on)
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(False)
    with profile() as prof:
        x.select(0, 0)
        x[1:3, :2]
        x.split(2)
        x.narrow(1, 0, 2)
        x.reshape(3, 4)
        x.detach().unsqueeze(0).expand(2, 4, 3)
        torch.empty(5)
        x.to(torch.float32)  # already float32: an alias
        x.t().contiguous()  # copies
        x.to(torch.float64)  # copies
        x + 1
    torch.use_deterministic_algorithms(deterministic)
    assert computing_ops(prof) == 3


def test_cuda_launch_and_sync_tables(monkeypatch):
    """On CUDA --count-ops also counts the runtime's kernel launches and
    host synchronisations; the tables from given counts."""
    from collections import Counter
    from types import SimpleNamespace

    import bench.profiling as profiling
    events = [SimpleNamespace(name=n) for n in (
        'cudaLaunchKernel', 'cudaLaunchKernelExC', 'cudaStreamSynchronize',
        'aten::mm', 'cudaLaunchKernel', 'cudaMemcpyAsync')]
    assert profiling.cuda_runtime_counts(events) == (3, 1)
    fake = {'m2f_mm': (10, 5, Counter(), 4, 1, 3), 'mmdet': (20, 10, Counter(), 16, 4, 6)}
    monkeypatch.setattr(profiling, 'count_aten_ops', lambda bench: {
        p: fake[bench.name] for p in profiling.PHASES + ('inference',)})
    args = SimpleNamespace(size=64, batch=1, small=True, optimizer='config')
    report = profiling.op_count_report(
        {n: SimpleNamespace(name=n, infer_batch=2) for n in ('m2f_mm', 'mmdet')}, args)
    launches = report.split('### CUDA kernel launches')[1].split('###')[0]
    assert '| MMDetection 3.3 | 16 | 16 | 16 | 48 | 0.25× | 16 | 0.25× |' in launches
    syncs = report.split('### CUDA host synchronisations')[1].split('###')[0]
    assert '| m2f_mm (ours) | 1 | 1 | 1 | 3 | — | 1 | — |' in syncs
    assert '| inference (batch 2) |' in syncs
