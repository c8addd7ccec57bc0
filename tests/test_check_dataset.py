"""tools/check_dataset.py on small generated datasets, clean and broken."""
import json
import os
import shutil
import sys
from collections import Counter

import numpy as np
import pytest
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PANOPTIC = os.path.join(REPO, 'configs/quickstart/mask2former_r18_toy-panoptic.py')
sys.path.insert(0, os.path.join(REPO, 'tools'))


@pytest.fixture(scope='module')
def toy_master(tmp_path_factory):
    from make_toy_dataset import make_toy_dataset
    root = tmp_path_factory.mktemp('toy_check')
    make_toy_dataset(str(root), num_train=6, num_val=2, size=64, seed=3)
    return root


@pytest.fixture
def toy(toy_master, tmp_path):
    shutil.copytree(toy_master, tmp_path / 'toy')
    return tmp_path / 'toy'


def _check(config, root, *extra, capsys=None):
    import check_dataset
    code = check_dataset.main([
        config, '--no-progress', '--cfg-options',
        f'train_dataloader.dataset.data_root={root}/',
        f'val_dataloader.dataset.data_root={root}/',
        f'test_dataloader.dataset.data_root={root}/', *extra])
    return code, capsys.readouterr().out


def _histogram(out):
    """{class: (segments, images, pixels)} from the printed table."""
    rows = {}
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('per class'))
    for line in lines[start + 2:]:
        parts = line.split()
        if not parts or not parts[0].isdigit():
            break
        rows[parts[1]] = tuple(int(p) for p in parts[3:6])
    return rows


def test_clean_panoptic_set_passes_with_the_file_s_counts(toy, capsys):
    code, out = _check(PANOPTIC, toy, capsys=capsys)
    assert code == 0, out
    assert 'no problem that stops training' in out
    ann = json.load(open(toy / 'annotations/panoptic_train.json'))
    names = {c['id']: c['name'] for c in ann['categories']}
    segs = Counter(names[s['category_id']] for a in ann['annotations']
                   for s in a['segments_info'])
    pixels = Counter()
    for a in ann['annotations']:
        for s in a['segments_info']:
            pixels[names[s['category_id']]] += s['area']
    hist = _histogram(out)
    assert set(hist) == set(names.values())
    for name, (n, _, px) in hist.items():
        assert (n, px) == (segs[name], pixels[name]), name


def _break_panoptic(root):
    """Image 4: unknown category on a segment whose id image 1 also uses;
    image 2: no image file; image 3: undecodable PNG; image 5: PNG of
    another size; image 6: no segment."""
    path = root / 'annotations/panoptic_train.json'
    ann = json.load(open(path))
    by_id = {a['image_id']: a for a in ann['annotations']}
    bad = by_id[4]['segments_info'][0]
    assert bad['id'] in {s['id'] for s in by_id[1]['segments_info']}
    bad['category_id'] = 99
    by_id[6]['segments_info'] = []
    json.dump(ann, open(path, 'w'))
    os.remove(root / 'train/000002.png')
    (root / 'annotations/panoptic_train/000003.png').write_bytes(b'\x89PNG broken')
    png = root / 'annotations/panoptic_train/000005.png'
    Image.open(png).resize((48, 64), Image.NEAREST).save(png)
    return bad


def test_broken_panoptic_set_names_each_problem(toy, capsys, tmp_path):
    bad = _break_panoptic(toy)
    code, out = _check(PANOPTIC, toy, '--show-dir', str(tmp_path / 'vis'),
                       capsys=capsys)
    assert code == 1, out
    ann_file = f'{toy}/annotations/panoptic_train.json'
    lines = out.splitlines()

    def line_with(*parts):
        found = [line for line in lines if all(p in line for p in parts)]
        assert len(found) == 1, (parts, out)
        return found[0]

    line_with(ann_file, 'image id 4', 'annotations[3].segments_info[0]',
              f'segment id {bad["id"]}', 'category_id 99')
    assert not any('image id 1,' in line for line in lines), out
    line_with(ann_file, 'image id 2', 'images[1].file_name', 'train/000002.png',
              'does not exist')
    line_with('panoptic_train/000003.png', 'image id 3', 'cannot decode')
    line_with('panoptic_train/000005.png', 'image id 5', 'is 64x48',
              'its image is 64x64')
    line_with('panoptic_train/000006.png', 'image id 6', 'no segment')
    assert out.index('problems that stop training (4)') < out.index('warnings (1)')
    # overlays of the samples that went through the pipeline: images 1 and 6
    # (4 and 2 left the data list; 3 and 5 failed to load)
    assert sorted(os.listdir(tmp_path / 'vis')) == ['000000_000001.png',
                                                    '000003_000006.png']


def test_debug_stops_at_the_first_error_with_a_traceback(toy):
    import check_dataset
    os.remove(toy / 'train/000002.png')
    with pytest.raises(Exception) as e:
        check_dataset.main([PANOPTIC, '--debug', '--no-progress', '--cfg-options',
                            f'train_dataloader.dataset.data_root={toy}/'])
    assert not isinstance(e.value, SystemExit)
    assert 'image id 2' in str(e.value)


SEMANTIC_CONFIG = """
default_scope = 'mmseg'
custom_imports = dict(imports=['m2f_mm'], allow_failed_imports=False)
metainfo = dict(classes=('circle', 'square', 'triangle', 'sky', 'grass', 'water'),
                palette=[(220, 20, 60), (255, 165, 0), (148, 0, 211),
                         (135, 190, 235), (70, 150, 60), (30, 70, 160)])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomCrop', crop_size=({crop}, {crop})),
    dict(type='PackSegInputs'),
    dict(type='m2f_mm.BuildMaskTargets', num_classes=6, ignore_index=255),
]
train_dataloader = dict(dataset=dict(
    type='BaseSegDataset', data_root='{root}/', metainfo=metainfo,
    data_prefix=dict(img_path='train', seg_map_path='semantic/train'),
    img_suffix='.png', seg_map_suffix='.png', pipeline=train_pipeline))
"""


def _semantic_config(tmp_path, root, crop):
    path = tmp_path / f'semantic_crop{crop}.py'
    path.write_text(SEMANTIC_CONFIG.replace('{root}', str(root))
                    .replace('{crop}', str(crop)))
    return str(path)


def test_semantic_set_out_of_range_labels_and_size(toy, tmp_path, capsys):
    sem = toy / 'semantic/train'
    label = np.array(Image.open(sem / '000002.png'))
    label[:4, :4] = 9  # a class that does not exist (6 classes)
    Image.fromarray(label).save(sem / '000002.png')
    Image.fromarray(label[:32]).save(sem / '000004.png')
    code, out = _check(_semantic_config(tmp_path, toy, 64), toy, capsys=capsys)
    assert code == 1, out
    assert f'{sem}/000002.png: image {toy}/train/000002.png, gt_seg_map: labels [9] ' \
           'are outside [0, 6)' in out
    assert f'{sem}/000004.png: image {toy}/train/000004.png, gt_seg_map: the label ' \
           'map is 32x64 but its image is 64x64' in out


def test_crop_count_and_overlays_after_the_pipeline(toy, tmp_path, capsys):
    code, out = _check(_semantic_config(tmp_path, toy, 64), toy, capsys=capsys)
    assert code == 0, out
    assert 'segments emptied by the pipeline (crop): 0 of' in out
    vis = tmp_path / 'vis'
    code, out = _check(_semantic_config(tmp_path, toy, 12), toy, '--show-dir',
                       str(vis), capsys=capsys)
    assert code == 0, out
    emptied = int(out.split('segments emptied by the pipeline (crop): ')[1].split()[0])
    assert emptied > 0
    files = sorted(os.listdir(vis))
    assert len(files) == 6
    overlay = np.array(Image.open(vis / files[0]))
    assert overlay.shape == (12, 12, 3)  # what the model sees: the crop
