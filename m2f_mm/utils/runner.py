"""What tools/train.py and tools/test.py share: loading a config with the
usual command-line overrides and building mmengine's Runner for it."""
import os.path as osp
from typing import Optional

from mmengine.config import Config

from ..patches import allow_runner_checkpoint_globals, setup_cpu_distributed


def load_config(path: str, tool: str, cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None, launcher: str = 'none') -> Config:
    """Read ``path``, apply ``--cfg-options``, the launcher and the work dir
    (default ``./work_dirs/<config name>``); ``tool`` prefixes errors."""
    if not osp.isfile(path):
        raise SystemExit(f'{tool}: config {path} does not exist')
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def build_runner(cfg: Config):
    """mmengine's Runner (or the config's ``runner_type``) in the config's
    default scope, with the fixes of :mod:`m2f_mm.patches` that our tools
    apply: mmengine checkpoints load on torch ≥ 2.6, and distributed runs
    start on CPU-only machines (gloo, CPU DDP)."""
    from mmengine.registry import RUNNERS, init_default_scope
    from mmengine.runner import Runner
    allow_runner_checkpoint_globals()
    setup_cpu_distributed(cfg)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)


def run_or_exit(step, tool: str):
    """Run ``runner.train``/``runner.test``; a missing dataset file ends the
    tool with one line naming it instead of a traceback."""
    try:
        return step()
    except FileNotFoundError as e:
        hint = '' if 'README' in str(e) else \
            "; see the README's 'Datasets' section for how to get the data"
        raise SystemExit(f'{tool}: {e}{hint}')
