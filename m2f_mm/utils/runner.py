"""What tools/train.py and tools/test.py share: loading a config with the
usual command-line overrides and building mmengine's Runner for it."""
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from m2f_mm.datasets.class_counts import apply_class_counts, head_counts
from m2f_mm.datasets.pipeline_errors import name_pipeline_errors
from ..patches import allow_runner_checkpoint_globals, setup_cpu_distributed
from .checkpoint import PARTIAL_KEY, check_covers, is_local, read_checkpoint
from .compile import compile_network, compile_options
from .determinism import (describe_deterministic_mode, prepare_deterministic,
                          relax_deterministic)
from .errors import (CheckpointError, DataError, InputError, NonFiniteError,
                     debug_enabled, one_line)
from .tf32 import apply_tf32, tf32_option


def load_config(path: str, tool: str, cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None, launcher: str = 'none',
                tf32: Optional[str] = None) -> Config:
    """Read ``path``, apply ``--cfg-options``, the launcher, the work dir
    (default ``./work_dirs/<config name>``) and ``--tf32 on|off``
    (``env_cfg.tf32``); ``tool`` prefixes errors."""
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
    if tf32 is not None:
        cfg.env_cfg = dict(cfg.get('env_cfg') or {}, tf32=tf32_option(tf32))
    return cfg


class M2FRunner(Runner):
    """mmengine's Runner that prepares every dataset it builds for the model:
    the datasets' pipelines name the file, image and step of an error
    (:func:`~m2f_mm.datasets.pipeline_errors.name_pipeline_errors`), and
    their metainfo and ``BuildMaskTargets`` follow the head's class counts
    (:func:`~m2f_mm.datasets.class_counts.apply_class_counts`). A
    deterministic run (``randomness.deterministic``) warns instead of
    stopping at an op without a deterministic kernel, and names it in the
    log (:mod:`m2f_mm.utils.determinism`). ``env_cfg.tf32`` sets TF32
    (:mod:`m2f_mm.utils.tf32`); ``compile`` compiles the network."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self._deterministic:
            self.logger.info(describe_deterministic_mode())
        if torch.cuda.is_available():
            self.logger.info(self._tf32_line)

    def setup_env(self, env_cfg: dict) -> None:
        super().setup_env(env_cfg)
        self._tf32_line = apply_tf32((env_cfg or {}).get('tf32'))

    def set_randomness(self, seed, diff_rank_seed: bool = False,
                       deterministic: bool = False) -> None:
        super().set_randomness(seed, diff_rank_seed, deterministic)
        if deterministic:
            relax_deterministic()

    def load_checkpoint(self, filename: str, map_location='cpu',
                        strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]):  # noqa: B006 (mmengine's default)
        """mmengine's ``Runner.load_checkpoint`` (which ``load_from`` and
        ``resume`` call) with m2f_mm's loader for local files: a truncated,
        foreign or code-running file, or a checkpoint that does not cover
        the model, raises a one-line
        :class:`~m2f_mm.utils.errors.CheckpointError` before anything runs
        (mmengine would only warn of missing keys and then evaluate or train
        a randomly initialised model). ``load_partial=True`` in the config
        loads such a checkpoint on purpose, with a warning in the log.

        Args:
            filename: the checkpoint; URLs and ``xxx://`` names go to
                mmengine's loader unchanged.
            map_location: as for ``torch.load``.
            strict: as mmengine's (``load_partial`` does not relax it).
            revise_keys: (pattern, replacement) pairs applied to the keys.
        """
        if not is_local(filename):
            return super().load_checkpoint(filename, map_location, strict, revise_keys)
        from mmengine.model import is_model_wrapper
        from mmengine.runner.checkpoint import _load_checkpoint_to_model
        checkpoint = read_checkpoint(filename, map_location)
        # what mmengine's load_checkpoint does after reading, with the check
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        gap = check_covers(model, checkpoint, filename,
                           partial=bool(self.cfg.get(PARTIAL_KEY, False)),
                           revise_keys=revise_keys)
        if gap is not None:
            self.logger.warning(f'{gap} (loaded partially: {PARTIAL_KEY}=True)')
        checkpoint = _load_checkpoint_to_model(model, checkpoint, strict,
                                               revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def _maybe_compile(self, target: str) -> None:
        """The config's ``compile`` compiles the network modules (backbone,
        neck, head) instead of mmengine's whole ``train_step``
        (:mod:`m2f_mm.utils.compile`); ``target`` is ignored."""
        options = compile_options(self.cfg.get('compile'))
        if options is not None:
            names = compile_network(self.model, options)
            self.logger.info(f'torch.compile: {", ".join(names)} (the first '
                             'iterations compile and run slower)')

    def val(self) -> dict:
        self._maybe_compile('val_step')
        return super().val()

    def test(self) -> dict:
        self._maybe_compile('test_step')
        return super().test()

    def build_dataloader(self, *args, **kwargs):  # called on the instance
        loader = Runner.build_dataloader(*args, **kwargs)
        name_pipeline_errors(loader.dataset)
        found = head_counts(self.model)
        if found is not None:
            apply_class_counts(loader.dataset, *found)
        return loader


def build_runner(cfg: Config):
    """:class:`M2FRunner` (or the config's ``runner_type``) in the config's
    default scope, with the fixes of :mod:`m2f_mm.patches` that our tools
    apply: mmengine checkpoints load on torch ≥ 2.6, and distributed runs
    start on CPU-only machines (gloo, CPU DDP); a deterministic config gets
    cuBLAS's fixed workspace."""
    from mmengine.registry import RUNNERS, init_default_scope
    allow_runner_checkpoint_globals()
    setup_cpu_distributed(cfg)
    prepare_deterministic(cfg)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return M2FRunner.from_cfg(cfg)


def run_or_exit(step, tool: str, debug: bool = False):
    """Run ``step`` (e.g. ``runner.train``). An error in the data (a missing
    file, a :class:`~m2f_mm.utils.errors.DataError` from a dataset or a
    pipeline, also from a DataLoader worker), a non-finite prediction
    (:class:`~m2f_mm.utils.errors.NonFiniteError`), a checkpoint that cannot
    be read or is not the model's
    (:class:`~m2f_mm.utils.errors.CheckpointError`) or an input that is not
    an image (:class:`~m2f_mm.utils.errors.InputError`) ends the tool with
    one line naming the file, image and field (or iteration) instead of a
    traceback; ``debug`` (or ``M2F_MM_DEBUG=1``) keeps the traceback."""
    try:
        return step()
    except (DataError, NonFiniteError, FileNotFoundError, CheckpointError,
            InputError) as e:
        if debug_enabled(debug):
            raise
        msg = one_line(e)
        if isinstance(e, FileNotFoundError) and 'README' not in msg:
            msg += "; see the README's 'Datasets' section for how to get the data"
        raise SystemExit(f'{tool}: {msg} (traceback: --debug or '
                         'M2F_MM_DEBUG=1)')
