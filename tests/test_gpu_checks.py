"""tools/gpu_checks.sh without a GPU (DRY_RUN): the steps it would run, in
which order, under which time limits, and what a short budget skips. The
script exists for machines lent for minutes, where a step order or budget
mistake costs the whole loan."""
import os
import re
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _plan(tmp_path, **env):
    run_env = dict(os.environ, DRY_RUN='1', **{k: str(v) for k, v in env.items()})
    proc = subprocess.run(['bash', os.path.join(REPO, 'tools/gpu_checks.sh'), str(tmp_path)],
                          env=run_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = (tmp_path / 'summary.txt').read_text().splitlines()
    assert lines[-1].endswith('done'), lines
    return [line.split('] ', 1)[1] for line in lines[1:-1]]


def _bench_args(line):
    return line.split('tools/benchmark.py ', 1)[1].split()


def test_every_step_in_priority_order(tmp_path):
    steps = _plan(tmp_path)
    names = [s.split(':', 1)[0] for s in steps]
    # the checks start side by side: their lines come in any order, but the
    # toy data is made before the two quickstarts start, and their
    # comparison waits for both
    assert sorted(names[:6]) == ['compare_quickstarts', 'cuda_tests', 'quickstart',
                                 'quickstart_repeat', 'suite', 'toy_data']
    assert (names.index('toy_data') < names.index('quickstart') <
            names.index('compare_quickstarts'))
    assert names.index('quickstart_repeat') < names.index('compare_quickstarts')
    compare = steps[names.index('compare_quickstarts')]
    assert compare.endswith(f'tools/compare_runs.py {REPO}/work_dirs/gpu_quickstart '
                            f'{REPO}/work_dirs/gpu_quickstart-repeat')
    assert names[6:] == ['bench', 'bench', 'bench', 'count_ops', 'bench', 'bench', 'count_ops']
    assert all('would run with a 600 s limit' in s for s in steps)
    # the README's table first: fp32 then bf16, both with memory and each
    # config's optimizer
    fp32, bf16, fp16 = (_bench_args(s) for s in steps[6:9])
    for args in (fp32, bf16):
        assert '--no-memory' not in args and '--device' in args and 'cuda' in args
        assert args[args.index('--optimizer') + 1] == 'config'
    assert '--amp' not in fp32 and bf16[bf16.index('--amp') + 1] == 'bf16'
    assert fp16[fp16.index('--amp') + 1] == 'fp16'
    # the plain AdamW run: the last --optimizer wins in argparse
    plain = _bench_args(steps[10])
    assert plain[len(plain) - 1 - plain[::-1].index('--optimizer') + 1] == 'plain'


def test_parts_and_optional_rows(tmp_path):
    steps = _plan(tmp_path, PARTS='bench', BENCH_TF32=1, BENCH_COMPILE=1)
    assert [s.split(':', 1)[0] for s in steps].count('bench') == 7
    assert '--tf32 on' in steps[-2] and '--compile' in steps[-1]
    assert not any(s.startswith(('suite', 'cuda_tests', 'quickstart')) for s in steps)
    steps = _plan(tmp_path / 'once', PARTS='checks', QUICKSTART_REPEAT=0)
    assert sorted(s.split(':', 1)[0] for s in steps) == [
        'cuda_tests', 'quickstart', 'suite', 'toy_data']


def test_budget_cuts_limits_and_skips(tmp_path):
    steps = _plan(tmp_path / 'a', PARTS='checks', BUDGET=200, STEP_TIMEOUT=150,
                  SUITE_TIMEOUT=400, SUITE_ARGS='--deselect tests/x.py::y')
    limits = {s.split(':', 1)[0]: int(re.search(r'with a (\d+) s limit', s).group(1))
              for s in steps}
    # the budget (less 5 s) caps the suite's own 400 s; 150 s stays under it
    assert limits == {'suite': 195, 'toy_data': 150, 'quickstart': 150,
                      'quickstart_repeat': 150, 'cuda_tests': 150,
                      'compare_quickstarts': 150}
    assert any(s.startswith('suite') and s.endswith('--deselect tests/x.py::y')
               for s in steps)
    # under MIN_STEP seconds left: every step is skipped and named
    steps = _plan(tmp_path / 'b', BUDGET=40)
    assert len(steps) == 13 and all(': skipped, 35 s of the budget left' in s for s in steps)
