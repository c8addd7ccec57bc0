"""The quickstart end to end (slow: minutes of CPU training)."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_quickstart_beats_untrained_model(tmp_path):
    out = subprocess.run(
        [sys.executable, 'tools/quickstart.py', '--work-dir', str(tmp_path),
         '--iters', '400'], cwd=REPO, capture_output=True, text=True, timeout=3600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    rows = {}
    for line in out.stdout.splitlines():
        cells = [c.strip() for c in line.strip('|').split('|')]
        if len(cells) == 3 and cells[0] in ('PQ', 'mask AP', 'mIoU'):
            rows[cells[0]] = (float(cells[1]), float(cells[2]))
    assert set(rows) == {'PQ', 'mask AP', 'mIoU'}, out.stdout[-2000:]
    assert rows['PQ'][1] > rows['PQ'][0] + 10
    assert rows['mIoU'][1] > rows['mIoU'][0] + 10
    assert 'overlays:' in out.stdout
