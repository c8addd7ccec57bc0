"""The quickstart end to end (slow: about ten minutes of CPU training)."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_quickstart_meets_its_targets(tmp_path):
    out = subprocess.run(
        [sys.executable, 'tools/quickstart.py', '--work-dir', str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=3600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    rows = {}
    for line in out.stdout.splitlines():
        cells = [c.strip() for c in line.strip('|').split('|')]
        if len(cells) == 3 and cells[0] in ('PQ', 'PQ things', 'mask AP', 'mIoU'):
            rows[cells[0]] = (float(cells[1]), float(cells[2]))
    assert set(rows) == {'PQ', 'PQ things', 'mask AP', 'mIoU'}, out.stdout[-2000:]
    # the targets; both measured seeds meet them (README)
    for name, target in (('PQ', 70), ('PQ things', 50), ('mask AP', 40), ('mIoU', 80)):
        assert rows[name][1] >= target, (name, out.stdout[-2000:])
    assert rows['PQ'][1] > rows['PQ'][0] + 10
    for name in ('results.md', 'curves.png', 'overlays/grid.png',
                 'backbone_toyshapes.pth'):
        assert (tmp_path / name).is_file(), name
