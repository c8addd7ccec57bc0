"""tools/shape_probe.py: mask pooling, and a short run on a generated toy set."""
import os
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tools'))
import make_toy_dataset  # noqa: E402
import shape_probe  # noqa: E402


def test_pool_average_and_max_over_the_mask():
    feat = torch.zeros(2, 4, 4)
    feat[0, 0, 0] = 8.0   # inside the mask, one cell
    feat[1, 3, 3] = 5.0   # outside the mask
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[0, :4, :4] = True  # the top-left 2 x 2 cells at 1/2 scale
    avg = shape_probe.pool(feat, mask, 'avg')
    mx = shape_probe.pool(feat, mask, 'max')
    assert avg.shape == mx.shape == (1, 2)
    assert avg.tolist() == [[2.0, 0.0]]   # 8 spread over 4 cells; outside ignored
    assert mx.tolist() == [[8.0, 0.0]]


def test_short_run_reports_accuracy_and_confusion(tmp_path, capsys):
    data = str(tmp_path / 'toy')
    make_toy_dataset.make_toy_dataset(data, num_train=6, num_val=3, size=64)
    _, _, val_labels = shape_probe.load_things(data, 'val', 3)
    num_val_things = sum(len(y) for y in val_labels)
    out = shape_probe.main(['--data', data, '--steps', '3', '--batch', '2',
                            '--threads', '1'])
    assert [s for s, _ in out['train_log']] == [3]
    assert 0.0 <= out['train_log'][0][1] <= 1.0
    confusion = torch.tensor(out['confusion'])
    assert confusion.shape == (3, 3) and confusion.sum() == num_val_things
    assert out['val_accuracy'] == pytest.approx(
        confusion.diag().sum().item() / num_val_things)
    printed = capsys.readouterr().out
    assert f'val: {num_val_things} things' in printed and 'circle' in printed


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='make_toy_dataset'):
        shape_probe.main(['--data', str(tmp_path / 'nothing'), '--steps', '1'])
