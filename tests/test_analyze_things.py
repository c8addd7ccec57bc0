"""tools/analyze_things.py: mask-IoU matching, the confusion matrix, the
linear probe, and a run on a generated toy split."""
import json
import os
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(REPO, 'configs/quickstart/mask2former_r18_toy-panoptic.py')
sys.path.insert(0, os.path.join(REPO, 'tools'))
import analyze_things  # noqa: E402


def test_best_matches_takes_the_best_overlapping_query():
    gt = torch.zeros(2, 16, 16)
    gt[0, :8, :8] = 1   # top-left square
    gt[1, 8:, 8:] = 1   # bottom-right square
    logits = torch.full((3, 4, 4), -5.0)  # masks at 1/4 scale
    logits[0, :2, :2] = 5      # exactly thing 0
    logits[1, 2:, 2:] = 5      # exactly thing 1
    logits[2, :2, :] = 5       # half of the image: overlaps thing 0 by 1/2
    cls = torch.tensor([[0.0, 3.0, 0.0], [4.0, 0.0, 0.0], [0.0, 0.0, 9.0]])
    iou, pred = analyze_things.best_matches(logits, cls, gt)
    assert iou.tolist() == [1.0, 1.0]
    assert pred.tolist() == [1, 0]  # argmax of queries 0 and 1


def test_report_counts_and_accuracy():
    labels = torch.tensor([0, 0, 1, 2])
    preds = torch.tensor([0, 1, 1, 3])  # 3 = the stuff class s
    text = analyze_things.format_report(['a', 'b', 'c', 's'], 3,
                                        torch.tensor([1.0, .5, .5, 0.]),
                                        preds, labels, {'level 0': 0.5})
    assert '4 ground-truth things' in text and 'mean 0.500' in text
    assert '50.0 % correct' in text
    rows = {line.split()[0]: [int(v) for v in line.split()[1:]]
            for line in text.splitlines()[4:7]}
    assert rows == {'a': [1, 1, 0, 0, 0], 'b': [0, 1, 0, 0, 0],
                    'c': [0, 0, 0, 1, 0]}
    assert 'level 0' in text and '50.0 %' in text.splitlines()[-1]


def test_linear_probe_separates_separable_features_only():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (300,), generator=g)
    separable = torch.nn.functional.one_hot(labels, 3).float() * 3 + \
        torch.randn(300, 3, generator=g) * 0.3
    noise = torch.randn(300, 8, generator=g)
    assert analyze_things.linear_probe(separable, labels, 3) > 0.95
    assert analyze_things.linear_probe(noise, labels, 3) < 0.6


def test_mask_pool_keeps_small_things():
    feat = torch.zeros(2, 4, 4)
    feat[0, 1, 2] = 8.0
    mask = torch.zeros(1, 16, 16)
    mask[0, 5, 9] = 1  # one pixel inside cell (1, 2) at 1/4 scale
    pooled = analyze_things.mask_pool(feat, mask)
    assert pooled.tolist() == [[8.0, 0.0]]


def test_tool_runs_on_a_toy_split(tmp_path, capsys):
    from make_toy_dataset import make_toy_dataset
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    import m2f_mm  # noqa: F401
    root = str(tmp_path / 'toy') + '/'
    make_toy_dataset(root, num_train=2, num_val=3, size=64, seed=5)
    cfg = Config.fromfile(QUICKSTART)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    ckpt = str(tmp_path / 'untrained.pth')
    torch.save({'state_dict': model.state_dict()}, ckpt)
    report = analyze_things.main([
        QUICKSTART, ckpt, '--probe', '--cfg-options',
        f'val_dataloader.dataset.data_root={root}'])
    ann = json.load(open(root + 'annotations/instances_val.json'))
    assert f'{len(ann["annotations"])} ground-truth things' in report
    table = report.splitlines()[4:7]
    counts = [sum(int(v) for v in line.split()[1:]) for line in table]
    per_class = [sum(a['category_id'] == c for a in ann['annotations'])
                 for c in (1, 2, 3)]
    assert counts == per_class
    assert 'pixel decoder level 2' in report and 'backbone level 3' in report


def test_tool_missing_checkpoint():
    with pytest.raises(SystemExit, match='checkpoint no/such.pth does not exist'):
        analyze_things.main([QUICKSTART, 'no/such.pth'])
