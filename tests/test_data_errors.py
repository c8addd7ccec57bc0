"""Data errors reach the user of tools/train.py and tools/test.py as one
line naming the file, image and field; --debug or M2F_MM_DEBUG=1 keeps the
traceback."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from child_env import child_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PANOPTIC = os.path.join(REPO, 'configs/quickstart/mask2former_r18_toy-panoptic.py')
sys.path.insert(0, os.path.join(REPO, 'tools'))


@pytest.fixture(scope='module')
def toy_master(tmp_path_factory):
    from make_toy_dataset import make_toy_dataset
    root = tmp_path_factory.mktemp('toy_errors')
    make_toy_dataset(str(root), num_train=6, num_val=2, size=64, seed=4)
    return root


@pytest.fixture
def toy(toy_master, tmp_path):
    shutil.copytree(toy_master, tmp_path / 'toy')
    return tmp_path / 'toy'


def _opts(root, workers=0):
    return ['--cfg-options', f'train_dataloader.dataset.data_root={root}/',
            f'val_dataloader.dataset.data_root={root}/',
            f'test_dataloader.dataset.data_root={root}/',
            'train_cfg.max_iters=1', 'train_cfg.val_interval=100',
            'train_dataloader.batch_size=2',
            f'train_dataloader.num_workers={workers}',
            f'train_dataloader.persistent_workers={workers > 0}',
            'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
            'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
            'train_dataloader.sampler.shuffle=False'] + [
                f'{split}_evaluator.{key}={root}/{path}'
                for split in ('val', 'test') for key, path in (
                    ('0.ann_file', 'annotations/panoptic_val.json'),
                    ('0.seg_prefix', 'annotations/panoptic_val/'),
                    ('1.ann_file', 'annotations/instances_val.json'))]


def _bad_category_in_image_4(root):
    """Image 4 gets a segment with category_id 99 whose segment id image 1
    also uses (MMDet's COCOPanoptic then hands it to image 1 too)."""
    path = root / 'annotations/panoptic_train.json'
    ann = json.load(open(path))
    by_id = {a['image_id']: a for a in ann['annotations']}
    seg = by_id[4]['segments_info'][0]
    assert seg['id'] in {s['id'] for s in by_id[1]['segments_info']}
    seg['category_id'] = 99
    json.dump(ann, open(path, 'w'))
    return seg


def test_unknown_category_names_the_right_image(toy, tmp_path, monkeypatch):
    import train
    monkeypatch.delenv('M2F_MM_DEBUG', raising=False)
    seg = _bad_category_in_image_4(toy)
    with pytest.raises(SystemExit) as e:
        train.main([PANOPTIC, '--work-dir', str(tmp_path / 'w')] + _opts(toy))
    msg = str(e.value)
    assert msg.startswith(f'train.py: {toy}/annotations/panoptic_train.json: image id 4, '
                          f'annotations[3].segments_info[0] (segment id {seg["id"]}): '
                          "category_id 99 is not among the file's categories"), msg
    assert '\n' not in msg and 'class `' not in msg


def test_pipeline_error_in_a_worker_is_one_line(toy, tmp_path, monkeypatch):
    """A corrupted image read in a DataLoader worker process."""
    import train
    monkeypatch.delenv('M2F_MM_DEBUG', raising=False)
    (toy / 'train/000002.png').write_bytes(b'not an image')
    with pytest.raises(SystemExit) as e:
        train.main([PANOPTIC, '--work-dir', str(tmp_path / 'w')] + _opts(toy, workers=1))
    msg = str(e.value)
    assert msg.startswith(f'train.py: {toy}/train/000002.png: image id 2, pipeline step '
                          'LoadImageFromFile: '), msg
    assert '\n' not in msg and 'Traceback' not in msg


def test_debug_keeps_the_traceback(toy, tmp_path, monkeypatch):
    """M2F_MM_DEBUG=1: the DataError itself, the original error chained."""
    import train

    from m2f_mm.utils.errors import DataError
    (toy / 'train/000002.png').write_bytes(b'not an image')
    monkeypatch.setenv('M2F_MM_DEBUG', '1')
    with pytest.raises(DataError) as e:
        train.main([PANOPTIC, '--work-dir', str(tmp_path / 'w')] + _opts(toy))
    assert isinstance(e.value.__cause__, Exception)


def test_debug_flag_and_environment(monkeypatch):
    import train

    from m2f_mm.utils.errors import DataError
    from m2f_mm.utils.runner import run_or_exit

    def fail():
        raise DataError('a.png: image id 1, gt_seg_map: bad')

    monkeypatch.delenv('M2F_MM_DEBUG', raising=False)
    with pytest.raises(SystemExit, match='^x.py: a.png: image id 1, gt_seg_map: bad'):
        run_or_exit(fail, 'x.py')
    with pytest.raises(DataError):
        run_or_exit(fail, 'x.py', debug=True)
    for value, raises in (('1', DataError), ('0', SystemExit), ('', SystemExit)):
        monkeypatch.setenv('M2F_MM_DEBUG', value)
        with pytest.raises(raises):
            run_or_exit(fail, 'x.py')
    assert train.parse_args([PANOPTIC, '--debug']).debug


def test_test_tool_names_an_undecodable_png(toy, tmp_path, monkeypatch):
    import test as test_tool
    import torch
    monkeypatch.delenv('M2F_MM_DEBUG', raising=False)
    png = toy / 'annotations/panoptic_val/000001.png'
    png.write_bytes(b'\x89PNG\r\n\x1a\n broken')
    ckpt = tmp_path / 'empty.pth'
    torch.save({'state_dict': {}}, ckpt)
    with pytest.raises(SystemExit) as e:  # the weights do not matter here
        test_tool.main([PANOPTIC, str(ckpt), '--work-dir', str(tmp_path / 'w')]
                       + _opts(toy) + ['load_partial=True'])
    msg = str(e.value)
    assert msg.startswith(f'test.py: {png}: image id 1, seg_map_path: cannot decode '
                          'the panoptic annotation PNG'), msg
    assert '\n' not in msg


@pytest.mark.slow
def test_train_tool_subprocess_prints_one_line(toy, tmp_path):
    """What a user sees on stderr: one line, exit status 1 (slow: about
    30 s, most of it mmengine formatting the config with yapf)."""
    (toy / 'train/000003.png').unlink()
    env = child_env(OMP_NUM_THREADS='1')
    env.pop('M2F_MM_DEBUG', None)
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, 'tools/train.py'), PANOPTIC,
         '--work-dir', str(tmp_path / 'w')] + _opts(toy),
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f'train.py: {toy}/annotations/panoptic_train.json: image id 3, '
                           'images[2].file_name: refers to '), proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr
