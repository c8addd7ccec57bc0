"""A few mmengine Runner iterations on the generated toy data lower the
loss, for panoptic and for instance training."""
import os
import sys

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def toy_data(tmp_path_factory):
    sys.path.insert(0, os.path.join(REPO, 'tools'))
    from make_toy_dataset import make_toy_dataset
    root = tmp_path_factory.mktemp('toy_train')
    make_toy_dataset(str(root), num_train=4, num_val=2, size=64, seed=1)
    return str(root) + '/'


def short_run_cfg(task, data_root, work_dir, max_iters=12):
    """The quickstart config of ``task`` cut down to ``max_iters`` Runner
    iterations on ``data_root``: no validation, checkpoints or schedule, the
    loss logged every iteration."""
    cfg = Config.fromfile(os.path.join(
        REPO, f'configs/quickstart/mask2former_r18_toy-{task}.py'))
    cfg.work_dir = str(work_dir)
    cfg.train_dataloader.update(batch_size=4, num_workers=0,
                                persistent_workers=False)
    cfg.train_dataloader.dataset.data_root = data_root
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = 100
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.param_scheduler = None
    cfg.optim_wrapper.optimizer.lr = 1e-3
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger.interval = 1
    return cfg


def train_losses(runner):
    """The per-iteration training losses the Runner logged."""
    return np.array(runner.message_hub.get_scalar('train/loss').data[0])


@pytest.mark.parametrize('task', ['panoptic', 'instance'])
def test_runner_lowers_loss(task, toy_data, tmp_path):
    cfg = short_run_cfg(task, toy_data, tmp_path)
    init_default_scope(cfg.default_scope)
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses = train_losses(runner)
    assert len(losses) == 12 and np.isfinite(losses).all()
    assert losses[-3:].mean() < 0.9 * losses[:3].mean(), losses
