"""A tiny smoke run of tools/benchmark.py's functions: small models, a
64×64 batch of one image, one round; no timing asserts."""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), 'tools'))
import benchmark  # noqa: E402


@pytest.fixture(scope='module')
def benches():
    # one thread: tiny ops on two threads crawl when other processes load the CPUs
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    impls = ['m2f_mm', 'mmdet'] + (['hf'] if benchmark.hf_available() else [])
    yield benchmark.build_benches(impls, size=64, batch=1, small=True)
    torch.set_num_threads(threads)


def test_synthetic_batch_has_things_and_stuff():
    inputs, samples = benchmark.synthetic_batch(64, 2, num_things=10, num_stuff=5)
    assert inputs.shape == (2, 3, 64, 64)
    for s in samples:
        assert len(s.gt_instances.labels) == 10
        assert (s.gt_instances.labels < benchmark.NUM_THINGS).all()
        stuff = torch.unique(s.gt_sem_seg.sem_seg)
        assert (stuff >= benchmark.NUM_THINGS).sum() >= 1


def test_outputs_equal_mmdet_on_shared_weights(benches):
    ours, ref = benches['m2f_mm'], benches['mmdet']
    diffs = benchmark.output_differences(ours.model, ref.model, ours.inputs,
                                         ours.samples)
    assert diffs['logits'] < 1e-4
    assert diffs['num_loss_terms'] == 30 and diffs['losses'] < 1e-4
    assert diffs['panoptic_pixels_differ'] == 0


def test_table_has_a_row_per_implementation(benches):
    fns = {k: b.train_step for k, b in benches.items()}
    train = benchmark.time_alternating(fns, repeats=1, warmup=0)
    infer = benchmark.time_alternating({k: b.predict for k, b in benches.items()},
                                       repeats=1, warmup=0)
    memory = {k: 100.0 for k in benches}
    table = benchmark.results_table(train, infer, memory)
    lines = table.splitlines()
    assert lines[0].startswith('| implementation |') and lines[1].startswith('| ---')
    assert len(lines) == 2 + len(benches)
    for impl in benches:
        assert any(line.startswith(f'| {benchmark.NAMES[impl]} |') for line in lines)
    assert '1.00×' in table  # ours / MMDet's memory


def test_profile_stages_and_peak_memory(benches):
    stages = benchmark.profile_train_step(benches['m2f_mm'])
    for name in ('backbone', 'pixel decoder', 'matching (costs + Hungarian)',
                 'backward'):
        assert stages[name] >= 0
    result = {}
    with benchmark.peak_rss_delta(result):
        # above glibc's largest mmap threshold, so fresh pages, then freed
        block = torch.ones(64 << 20, dtype=torch.uint8)
        del block
    assert result['peak_mib'] >= 60
