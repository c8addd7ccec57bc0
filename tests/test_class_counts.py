"""Class counts are declared once, in the head: the fusion head,
BuildMaskTargets and the dataset's metainfo follow, and a disagreement
stops at start with one line naming both."""
import os
import shutil
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from m2f_mm.datasets.class_counts import (apply_class_counts, head_counts,
                                          head_counts_from_cfg)
from m2f_mm.models.utils.targets import ClassCounts
from m2f_mm.utils.errors import DataError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PANOPTIC = os.path.join(REPO, 'configs/quickstart/mask2former_r18_toy-panoptic.py')
INSTANCE = os.path.join(REPO, 'configs/quickstart/mask2former_r18_toy-instance.py')
sys.path.insert(0, os.path.join(REPO, 'tools'))


@pytest.fixture(scope='module')
def toy_master(tmp_path_factory):
    from make_toy_dataset import make_toy_dataset
    root = tmp_path_factory.mktemp('toy_counts')
    make_toy_dataset(str(root), num_train=3, num_val=2, size=64, seed=6)
    return root


def _cfg(path=PANOPTIC, **head):
    cfg = Config.fromfile(path)
    cfg.model.panoptic_head.update(head)
    return cfg


def _dataset(cfg, root, pipeline=None):
    from mmdet.registry import DATASETS
    ds = cfg.train_dataloader.dataset
    ds.data_root = str(root) + '/'
    if pipeline is not None:
        ds.pipeline = pipeline
    init_default_scope('mmdet')
    return DATASETS.build(ds)


def test_configs_declare_counts_in_the_head_only():
    """No config repeats them in the fusion head or BuildMaskTargets."""
    import glob
    for path in glob.glob(os.path.join(REPO, 'configs', '**', '*.py'), recursive=True):
        if '_base_' in path:
            continue
        cfg = Config.fromfile(path)
        fusion = cfg.model.get('panoptic_fusion_head') or {}
        assert not {'num_things_classes', 'num_stuff_classes'} & set(fusion), path
        for t in cfg.train_dataloader.dataset.get('pipeline', []):
            if str(t.get('type')).endswith('BuildMaskTargets'):
                assert not {'num_things_classes', 'num_stuff_classes',
                            'num_classes'} & set(t), path


@pytest.mark.parametrize('path, counts', [(PANOPTIC, (2, 2)), (INSTANCE, (4, 0))])
def test_fusion_head_follows_the_head(path, counts):
    init_default_scope('mmdet')
    cfg = _cfg(path, num_things_classes=counts[0], num_stuff_classes=counts[1])
    model = MODELS.build(cfg.model)
    assert model.panoptic_fusion_head.counts == counts
    assert (model.panoptic_fusion_head.num_things_classes,
            model.panoptic_fusion_head.num_classes) == (counts[0], sum(counts))
    assert head_counts(model) == (counts, 'the panoptic_head')
    assert head_counts_from_cfg(cfg.model) == (counts, 'the panoptic_head')


def test_fusion_head_that_disagrees_is_one_line():
    init_default_scope('mmdet')
    cfg = _cfg(num_things_classes=2, num_stuff_classes=2)
    cfg.model.panoptic_fusion_head.update(num_things_classes=3, num_stuff_classes=3)
    with pytest.raises(DataError) as e:
        MODELS.build(cfg.model)
    assert ('Mask2FormerFusionHead has 3 thing + 3 stuff classes but the panoptic_head '
            'has 2 thing + 2 stuff classes') in str(e.value)
    assert '\n' not in str(e.value)


def test_build_mask_targets_follows_the_head(toy_master):
    """The head's counts given to BuildMaskTargets build the same targets as
    counts written into the pipeline (the config that sets all three)."""
    cfg = _cfg()
    from_head = _dataset(cfg, toy_master)
    apply_class_counts(from_head, ClassCounts(3, 3))
    pipeline = [dict(t) for t in cfg.train_pipeline]
    pipeline[-1].update(num_things_classes=3, num_stuff_classes=3)
    explicit = _dataset(_cfg(), toy_master, pipeline)
    from mmengine.runner import set_random_seed
    for i in range(len(from_head)):
        set_random_seed(i)  # the same flip, resize and crop
        a = from_head[i]['data_samples'].gt_segments
        set_random_seed(i)
        b = explicit[i]['data_samples'].gt_segments
        assert torch.equal(a.labels, b.labels) and torch.equal(a.masks, b.masks)
        assert a.metainfo['class_counts'] == (3, 3)
    assert (a.labels >= 3).any()  # stuff segments are there


def test_pipeline_counts_that_disagree_are_one_line(toy_master):
    pipeline = [dict(t) for t in _cfg().train_pipeline]
    pipeline[-1].update(num_things_classes=2, num_stuff_classes=4)
    dataset = _dataset(_cfg(), toy_master, pipeline)
    with pytest.raises(DataError, match=r'^BuildMaskTargets in the pipeline has 2 thing '
                                        r'\+ 4 stuff classes but the head has 3 thing '
                                        r'\+ 3 stuff classes'):
        apply_class_counts(dataset, ClassCounts(3, 3), 'the head')


def test_head_rejects_targets_built_for_other_counts():
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    from m2f_mm.models.heads import hosts
    sample = DetDataSample(metainfo=dict(img_path='x/7.png', img_id=7,
                                         batch_input_shape=(8, 8)))
    sample.gt_segments = InstanceData(metainfo=dict(class_counts=(2, 4)),
                                      labels=torch.tensor([1]),
                                      masks=torch.ones(1, 8, 8, dtype=torch.bool))
    with pytest.raises(DataError, match=r'^x/7.png: image id 7, gt_segments: its targets '
                                        r'were built for 2 thing \+ 4 stuff classes'):
        hosts.targets_from_samples([sample], ClassCounts(3, 3), 255)


def test_dataset_metainfo_that_disagrees_stops_train_at_start(toy_master, tmp_path):
    """The issue's case: the head changed to 2 + 2 classes, the dataset
    still has 3 + 3: train.py stops before the first iteration."""
    import train
    root = f'{toy_master}/'
    with pytest.raises(SystemExit) as e:
        train.main([PANOPTIC, '--work-dir', str(tmp_path), '--cfg-options',
                    'model.panoptic_head.num_things_classes=2',
                    'model.panoptic_head.num_stuff_classes=2',
                    f'train_dataloader.dataset.data_root={root}',
                    f'val_dataloader.dataset.data_root={root}',
                    'train_dataloader.num_workers=0',
                    'train_dataloader.persistent_workers=False',
                    'val_dataloader.num_workers=0',
                    'val_dataloader.persistent_workers=False',
                    f'val_evaluator.0.ann_file={root}annotations/panoptic_val.json',
                    f'val_evaluator.0.seg_prefix={root}annotations/panoptic_val/',
                    f'val_evaluator.1.ann_file={root}annotations/instances_val.json'])
    msg = str(e.value)
    assert msg.startswith(f'train.py: CocoPanopticDataset ({root}annotations/panoptic_'
                          'train.json): its metainfo has 6 classes (3 thing_classes + 3 '
                          'stuff_classes) but the panoptic_head has 2 thing + 2 stuff '
                          'classes'), msg
    assert '\n' not in msg
    assert not os.path.exists(tmp_path / 'iter_1.pth')


def test_check_dataset_reports_the_disagreement(toy_master, tmp_path, capsys):
    import check_dataset
    shutil.copytree(toy_master, tmp_path / 'toy')
    code = check_dataset.main([PANOPTIC, '--no-progress', '--cfg-options',
                               f'train_dataloader.dataset.data_root={tmp_path}/toy/',
                               'model.panoptic_head.num_stuff_classes=2'])
    out = capsys.readouterr().out
    assert code == 1
    assert 'class mismatch (1):' in out
    assert 'but the panoptic_head has 3 thing + 2 stuff classes' in out
