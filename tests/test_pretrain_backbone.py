"""tools/pretrain_backbone.py: mask pooling, a short run on a generated toy set,
and the saved backbone loading into the quickstart config."""
import os
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tools'))
import make_toy_dataset  # noqa: E402
import pretrain_backbone  # noqa: E402


def test_pool_average_and_max_over_the_mask():
    feat = torch.zeros(2, 4, 4)
    feat[0, 0, 0] = 8.0   # inside the mask, one cell
    feat[1, 3, 3] = 5.0   # outside the mask
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[0, :4, :4] = True  # the top-left 2 x 2 cells at 1/2 scale
    avg = pretrain_backbone.pool(feat, mask, 'avg')
    mx = pretrain_backbone.pool(feat, mask, 'max')
    assert avg.shape == mx.shape == (1, 2)
    assert avg.tolist() == [[2.0, 0.0]]   # 8 spread over 4 cells; outside ignored
    assert mx.tolist() == [[8.0, 0.0]]


@pytest.fixture(scope='module')
def tiny_toy(tmp_path_factory):
    data = str(tmp_path_factory.mktemp('toy') / 'toy')
    make_toy_dataset.make_toy_dataset(data, num_train=6, num_val=3, size=64)
    return data


def test_short_run_reports_accuracy_and_confusion(tiny_toy, capsys):
    data = tiny_toy
    _, _, val_labels = pretrain_backbone.load_things(data, 'val', 3)
    num_val_things = sum(len(y) for y in val_labels)
    out = pretrain_backbone.main(['--data', data, '--steps', '3', '--batch', '2',
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
        pretrain_backbone.main(['--data', str(tmp_path / 'nothing'), '--steps', '1'])


def test_saved_backbone_loads_through_the_quickstart_config(tiny_toy, tmp_path):
    """--out writes backbone.-prefixed weights; the quickstart config's
    Pretrained init_cfg puts exactly those weights into the model's backbone."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    import m2f_mm  # noqa: F401
    out = str(tmp_path / 'sub' / 'backbone.pth')
    pretrain_backbone.main(['--data', tiny_toy, '--steps', '2', '--batch', '2',
                            '--threads', '1', '--out', out])
    assert os.listdir(tmp_path / 'sub') == ['backbone.pth']  # no temporary file left
    saved = torch.load(out, map_location='cpu')
    assert saved['meta']['steps'] == 2
    state = saved['state_dict']
    assert state and all(k.startswith('backbone.') for k in state)

    cfg = Config.fromfile(os.path.join(
        REPO, 'configs/quickstart/mask2former_r18-toyshapes_toy-panoptic.py'))
    cfg.model.backbone.init_cfg.checkpoint = out
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    model.init_weights()
    loaded = model.backbone.state_dict()
    assert set('backbone.' + k for k in loaded) == set(state)
    for k, v in loaded.items():
        assert torch.equal(v, state['backbone.' + k]), k
    # trained for two steps, the weights differ from a fresh initialisation
    fresh = MODELS.build(Config.fromfile(os.path.join(
        REPO, 'configs/quickstart/mask2former_r18_toy-panoptic.py')).model.backbone)
    fresh.init_weights()
    assert not torch.equal(fresh.layer1[0].conv1.weight, loaded['layer1.0.conv1.weight'])


def test_missing_pretrained_backbone_is_an_error(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    import m2f_mm  # noqa: F401
    cfg = Config.fromfile(os.path.join(
        REPO, 'configs/quickstart/mask2former_r18-toyshapes_toy-panoptic.py'))
    cfg.model.backbone.init_cfg.checkpoint = str(tmp_path / 'absent.pth')
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    with pytest.raises(Exception, match='absent.pth'):
        model.init_weights()
