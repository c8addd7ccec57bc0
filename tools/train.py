"""Train a model from a config with mmengine's Runner (MMDet / MMSeg style).

    python tools/train.py configs/mask2former_r50_coco-panoptic.py
    python tools/train.py CONFIG --compile      # torch.compile the network
    python tools/train.py CONFIG --work-dir work_dirs/x --amp --resume
    python tools/train.py CONFIG --amp            # bf16 autocast on CPU, fp16 on CUDA
    python tools/train.py CONFIG --amp --amp-dtype bfloat16   # bf16 on CUDA
    python tools/train.py CONFIG --debug          # tracebacks of data errors
    bash tools/dist_train.sh CONFIG 8            # torchrun, one process per GPU
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a Mask2Former model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='where to save logs and checkpoints '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision training: bfloat16 '
                        'autocast on CPU, float16 with dynamic loss scaling on '
                        'CUDA (--amp-dtype bfloat16: bfloat16, no loss scaling)')
    parser.add_argument('--amp-dtype', choices=['float16', 'bfloat16'],
                        help='autocast dtype with --amp (CPU: bfloat16 only)')
    parser.add_argument('--debug', action='store_true',
                        help='full tracebacks for data and checkpoint errors '
                        '(also M2F_MM_DEBUG=1)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the actual batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CHECKPOINT, or from the latest '
                        'checkpoint in the work dir when given no path')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the backbone, neck and head (the '
                        "config's compile=True; a dict there passes options)")
    parser.add_argument('--tf32', choices=['on', 'off'],
                        help='TF32 matmuls and cuDNN convolutions on CUDA '
                        "(default: the config's env_cfg.tf32, else PyTorch's "
                        'defaults: matmul off, convolutions on)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. '
                        'train_cfg.max_iters=100 model.panoptic_head.num_queries=50; '
                        'load_partial=True lets load_from / --resume fill part '
                        'of the model (fine-tuning with a new class count)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def check_pretrained_backbone(cfg: Config) -> None:
    """A backbone ``init_cfg`` of type Pretrained that names a local file
    which is not there ends train.py with one line (mmengine would fail on
    it only after building the model and the data); one that is there but
    cannot be read (truncated, not a checkpoint, code in its pickle) raises
    the loader's one-line CheckpointError. Which of its keys the backbone
    takes is the init's ``prefix`` (partial by design): not checked."""
    init = (cfg.model.get('backbone') or {}).get('init_cfg')
    if not isinstance(init, dict) or init.get('type') != 'Pretrained':
        return
    ckpt = init.get('checkpoint')
    if isinstance(ckpt, str) and '://' not in ckpt and not osp.isfile(ckpt):
        raise SystemExit(
            f'train.py: model.backbone.init_cfg.checkpoint {ckpt} does not exist; '
            'write it first (the quickstart\'s backbone: python '
            f'tools/pretrain_backbone.py --out {ckpt}) or point '
            '--cfg-options model.backbone.init_cfg.checkpoint=... at it')
    if isinstance(ckpt, str) and '://' not in ckpt:
        from m2f_mm.utils.checkpoint import read_checkpoint
        read_checkpoint(ckpt)


def build_cfg(args) -> Config:
    from m2f_mm.utils.runner import load_config
    cfg = load_config(args.config, 'train.py', args.cfg_options, args.work_dir,
                      args.launcher, args.tf32)
    if args.compile and not cfg.get('compile'):
        cfg.compile = True
    check_pretrained_backbone(cfg)
    if args.amp_dtype and not args.amp:
        raise SystemExit('train.py: --amp-dtype needs --amp')
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if args.amp or wrapper in ('AmpOptimWrapper', 'mmengine.AmpOptimWrapper'):
        # mmengine's AmpOptimWrapper refuses the CPU: autocast there in bf16
        from mmengine.device import get_device

        from m2f_mm.engine import amp_optim_wrapper_cfg
        try:
            cfg.optim_wrapper = amp_optim_wrapper_cfg(
                cfg.optim_wrapper, get_device(), args.amp_dtype)
        except ValueError as e:
            raise SystemExit(f'train.py: {e}')
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise SystemExit('train.py: --auto-scale-lr needs auto_scale_lr.'
                             'base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise SystemExit(f'train.py: checkpoint {args.resume} does not exist')
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv=None):
    args = parse_args(argv)
    import m2f_mm  # noqa: F401  (the m2f_mm scope)
    from m2f_mm.utils.runner import build_runner, run_or_exit
    cfg = run_or_exit(lambda: build_cfg(args), 'train.py', args.debug)
    run_or_exit(lambda: build_runner(cfg).train(), 'train.py', args.debug)


if __name__ == '__main__':
    main()
