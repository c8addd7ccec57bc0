"""Run under torchrun by tests/test_tools.py: a few iterations of the
quickstart config with DDP over gloo, then each rank saves its parameters."""
import os
import sys

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import m2f_mm  # noqa: F401


def main(config, data_root, work_dir, iters):
    cfg = Config.fromfile(config)
    cfg.launcher = 'pytorch'
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    cfg.work_dir = work_dir
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters + 1
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.logger.interval = 1
    cfg.train_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.data_root = data_root
    from m2f_mm.utils import cpu_ddp_wrapper_cfg
    cpu_ddp_wrapper_cfg(cfg)
    init_default_scope(cfg.default_scope)
    runner = Runner.from_cfg(cfg)
    runner.train()
    params = {k: v.detach().cpu() for k, v in
              runner.model.module.named_parameters()}
    torch.save(params, os.path.join(work_dir, f'params_rank{dist.get_rank()}.pth'))
    assert dist.get_world_size() == 2


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
