"""Run under torchrun by tests/test_tools.py: a few iterations of the
quickstart config with DDP, then each rank saves its parameters. The config
asks for nccl, as configs do; on a CPU-only torch our tools' runner builder
starts gloo instead (m2f_mm.patches.setup_cpu_distributed)."""
import os
import sys

import torch
import torch.distributed as dist
from mmengine.config import Config

import m2f_mm  # noqa: F401


def main(config, data_root, work_dir, iters):
    cfg = Config.fromfile(config)
    cfg.launcher = 'pytorch'
    cfg.work_dir = work_dir
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters + 1
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.logger.interval = 1
    cfg.train_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.data_root = data_root
    from m2f_mm.utils.runner import build_runner
    runner = build_runner(cfg)
    runner.train()
    params = {k: v.detach().cpu() for k, v in
              runner.model.module.named_parameters()}
    torch.save(params, os.path.join(work_dir, f'params_rank{dist.get_rank()}.pth'))
    assert dist.get_world_size() == 2
    if not torch.cuda.is_available():
        assert dist.get_backend() == 'gloo'


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
