"""tools/compare_runs.py: whether two runs' last checkpoints and result
tables repeat bit for bit."""
import os.path as osp
import sys

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'tools'))

from compare_runs import main  # noqa: E402


def _run(work, state, table='| PQ | 1.0 | 78.3 |\n'):
    work.mkdir()
    ckpt = work / 'iter_3.pth'
    torch.save({'state_dict': state, 'meta': {}}, ckpt)
    (work / 'last_checkpoint').write_text(str(ckpt))
    (work / 'results.md').write_text(f'# Quickstart results\n\ncheckpoint: `{ckpt}`\n\n{table}')


def _state(delta=0.0):
    return {'w': torch.tensor([1.0, 2.0]) + torch.tensor([0.0, delta]),
            'steps': torch.tensor(3)}


def test_equal_runs(tmp_path, capsys):
    _run(tmp_path / 'a', _state())
    _run(tmp_path / 'b', _state())
    assert main([str(tmp_path / 'a'), str(tmp_path / 'b')]) == 0
    out = capsys.readouterr().out
    assert 'bit for bit equal, all 2 tensors' in out and 'the same tables' in out
    assert out.strip().endswith('the runs repeat bit for bit')


def test_one_rounding_apart(tmp_path, capsys):
    _run(tmp_path / 'a', _state())
    _run(tmp_path / 'b', _state(2.0 ** -22))
    assert main([str(tmp_path / 'a'), str(tmp_path / 'b')]) == 1
    out = capsys.readouterr().out
    assert "1 of 2 tensors differ (largest |diff| 2.38e-07, first ['w'])" in out
    assert out.strip().endswith('do not repeat bit for bit')


def test_tables_differ_and_missing_tensor(tmp_path, capsys):
    _run(tmp_path / 'a', _state())
    _run(tmp_path / 'b', {'w': _state()['w']}, table='| PQ | 1.0 | 78.4 |\n')
    assert main([str(tmp_path / 'a'), str(tmp_path / 'b')]) == 1
    out = capsys.readouterr().out
    assert "1 in one run only ['steps']" in out and 'the tables differ' in out


def test_unfinished_run_is_one_line(tmp_path, capsys):
    _run(tmp_path / 'a', _state())
    (tmp_path / 'b').mkdir()
    assert main([str(tmp_path / 'a'), str(tmp_path / 'b')]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f'compare_runs: {tmp_path / "b"} has no last_checkpoint (did its training finish?)'
