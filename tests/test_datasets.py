"""Broken dataset files give one-line errors that name the problem; every
config builds its model."""
import glob
import json
import os
import shutil
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from m2f_mm.datasets.class_counts import apply_class_counts
from m2f_mm.models.utils.targets import ClassCounts
from m2f_mm.utils.errors import DataError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(REPO, 'configs', '*.py')) +
                 glob.glob(os.path.join(REPO, 'configs', 'quickstart', '*.py')))


@pytest.fixture(scope='module')
def toy_master(tmp_path_factory):
    sys.path.insert(0, os.path.join(REPO, 'tools'))
    from make_toy_dataset import make_toy_dataset
    root = tmp_path_factory.mktemp('toy_master')
    make_toy_dataset(str(root), num_train=4, num_val=2, size=64, seed=2)
    return root


@pytest.fixture
def toy(toy_master, tmp_path):
    shutil.copytree(toy_master, tmp_path / 'toy')
    return tmp_path / 'toy'


def _dataset(root, kind='panoptic', pipeline=None):
    from mmdet.registry import DATASETS
    import m2f_mm  # noqa: F401
    cfg = Config.fromfile(os.path.join(
        REPO, f'configs/quickstart/mask2former_r18_toy-{kind}.py'))
    ds = cfg.train_dataloader.dataset
    ds.data_root = str(root) + '/'
    if pipeline is not None:
        ds.pipeline = pipeline
    init_default_scope('mmdet')
    dataset = DATASETS.build(ds)
    dataset.full_init()
    return dataset


def _one_line(exc):
    return '\n' not in str(exc.value)


def test_missing_annotation_file(toy):
    os.remove(toy / 'annotations/panoptic_train.json')
    with pytest.raises(FileNotFoundError) as e:
        _dataset(toy)
    assert 'annotations/panoptic_train.json: annotation file not found' in str(e.value)
    assert "README's 'Datasets'" in str(e.value) and _one_line(e)


@pytest.mark.parametrize('kind', ['panoptic', 'instance'])
def test_image_id_without_file(toy, kind):
    name = 'panoptic' if kind == 'panoptic' else 'instances'
    ann = json.load(open(toy / f'annotations/{name}_train.json'))
    img = ann['images'][1]
    os.remove(toy / 'train' / img['file_name'])
    with pytest.raises(DataError) as e:
        _dataset(toy, kind)
    assert f'image id {img["id"]}, images[1].file_name: refers to ' in str(e.value)
    assert img['file_name'] in str(e.value) and _one_line(e)


def test_category_not_in_metainfo(toy):
    path = toy / 'annotations/panoptic_train.json'
    ann = json.load(open(path))
    seg = ann['annotations'][0]['segments_info'][0]
    seg['category_id'] = 99
    json.dump(ann, open(path, 'w'))
    with pytest.raises(ValueError) as e:
        _dataset(toy)
    assert (f'image id {ann["annotations"][0]["image_id"]}, annotations[0].segments_info[0] '
            f'(segment id {seg["id"]}): category_id 99 is not among the file\'s '
            'categories') in str(e.value) and _one_line(e)


def test_instance_category_not_declared(toy):
    path = toy / 'annotations/instances_train.json'
    ann = json.load(open(path))
    ann['annotations'][0]['category_id'] = 42
    json.dump(ann, open(path, 'w'))
    with pytest.raises(ValueError, match=r'image id \d+, annotations\[0\] \(annotation '
                                         r'id \d+\): category_id 42 is not among '
                                         "the file's categories"):
        _dataset(toy, 'instance')


def _dataset_with_metainfo(root, classes, things=None):
    from mmdet.registry import DATASETS
    cfg = Config.fromfile(os.path.join(
        REPO, 'configs/quickstart/mask2former_r18_toy-panoptic.py'))
    ds = cfg.train_dataloader.dataset
    ds.data_root = str(root) + '/'
    ds.metainfo = dict(classes=classes, thing_classes=things or classes[:3],
                       stuff_classes=classes[len(things or classes[:3]):])
    init_default_scope('mmdet')
    DATASETS.build(ds).full_init()


def test_metainfo_class_missing_from_the_file(toy):
    """MMDet would silently give the labels of the 5 matching categories."""
    classes = ('circle', 'square', 'triangle', 'sky', 'grass', 'lava')
    with pytest.raises(ValueError, match=r"panoptic_train.json: categories: metainfo "
                                         r"classes \['lava'\] are not category names"):
        _dataset_with_metainfo(toy, classes)


def test_metainfo_order_differs_from_the_file(toy):
    """MMDet's labels follow the file's order, whatever the metainfo says."""
    classes = ('circle', 'square', 'triangle', 'water', 'grass', 'sky')
    with pytest.raises(ValueError, match='list the metainfo classes in its order'):
        _dataset_with_metainfo(toy, classes)


def test_isthing_disagrees_with_the_metainfo(toy):
    path = toy / 'annotations/panoptic_train.json'
    ann = json.load(open(path))
    ann['categories'][1]['isthing'] = 0  # square
    json.dump(ann, open(path, 'w'))
    with pytest.raises(ValueError, match=r"categories \['square'\] disagree with the "
                                         'metainfo thing_classes'):
        _dataset(toy)


def test_panoptic_png_of_another_size(toy):
    from PIL import Image
    dataset = _dataset(toy)
    info = dataset.get_data_info(0)
    Image.open(info['seg_map_path']).resize((40, 64)).save(info['seg_map_path'])
    with pytest.raises(ValueError) as e:
        dataset[0]
    assert str(e.value) == (f'{info["seg_map_path"]}: image id {info["img_id"]}, '
                            'seg_map_path: the panoptic PNG is 64x40 but its image '
                            'is 64x64')


def test_corrupted_panoptic_png(toy):
    dataset = _dataset(toy)
    seg_path = dataset.get_data_info(0)['seg_map_path']
    with open(seg_path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + b'garbage' * 10)
    with pytest.raises(ValueError) as e:
        dataset[0]
    assert (f'{seg_path}: image id {dataset.get_data_info(0)["img_id"]}, seg_map_path: '
            'cannot decode the panoptic annotation PNG') in str(e.value)
    assert _one_line(e)


def test_corrupted_image(toy):
    dataset = _dataset(toy)
    img_path = dataset.get_data_info(0)['img_path']
    with open(img_path, 'wb') as f:
        f.write(b'not an image')
    with pytest.raises(Exception, match=f'failed to load image: {img_path}'):
        dataset[0]


def test_quickstart_dataloaders_build(toy):
    from mmengine.runner import Runner
    cfg = Config.fromfile(os.path.join(
        REPO, 'configs/quickstart/mask2former_r18_toy-panoptic.py'))
    cfg.train_dataloader.dataset.data_root = str(toy) + '/'
    cfg.train_dataloader.update(num_workers=0, persistent_workers=False)
    init_default_scope('mmdet')
    loader = Runner.build_dataloader(cfg.train_dataloader)
    apply_class_counts(loader.dataset, ClassCounts(3, 3))  # as m2f_mm's runner does
    batch = next(iter(loader))
    sample = batch['data_samples'][0]
    assert 'gt_segments' in sample and len(sample.gt_segments) > 0
    assert sample.gt_segments.masks.dtype == torch.bool


@pytest.mark.parametrize('path', CONFIGS, ids=[os.path.relpath(c, REPO) for c in CONFIGS])
def test_every_config_builds_its_model(path):
    from mmengine.registry import MODELS
    import m2f_mm  # noqa: F401
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)  # no init_weights: it would download
    assert sum(p.numel() for p in model.parameters()) > 1e6
    assert cfg.train_dataloader.dataset.type.startswith(('m2f_mm.', 'ADE', 'Cityscapes'))
