"""Evaluate a checkpoint with mmengine's Runner and the config's evaluators.

    python tools/test.py CONFIG CHECKPOINT --compile   # torch.compile the network
    python tools/test.py CONFIG CHECKPOINT [--out results.pkl] [--show-dir vis]
    python tools/test.py CONFIG CHECKPOINT --amp --amp-dtype bfloat16
    bash tools/dist_test.sh CONFIG CHECKPOINT 8
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where to save the evaluation metrics')
    parser.add_argument('--out', help='dump raw predictions to this .pkl file')
    parser.add_argument('--show', action='store_true', help='show predictions')
    parser.add_argument('--show-dir', help='save overlays of the predictions '
                        'under <work_dir>/<timestamp>/<show-dir>')
    parser.add_argument('--wait-time', type=float, default=2,
                        help='seconds between shown images')
    parser.add_argument('--amp', action='store_true',
                        help='mixed-precision inference: bfloat16 on CPU, '
                        'float16 on CUDA (--amp-dtype to choose)')
    parser.add_argument('--amp-dtype', choices=['float16', 'bfloat16'],
                        help='autocast dtype with --amp (CPU: bfloat16 only)')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation '
                        '(needs tta_model and tta_pipeline in the config)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the backbone, neck and head (the '
                        "config's compile=True; a dict there passes options)")
    parser.add_argument('--tf32', choices=['on', 'off'],
                        help='TF32 matmuls and cuDNN convolutions on CUDA '
                        "(default: the config's env_cfg.tf32, else PyTorch's "
                        'defaults: matmul off, convolutions on)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings; load_partial=True '
                        'evaluates a checkpoint that covers only part of the '
                        'model (without it such a checkpoint, e.g. another '
                        "model's, ends the tool with one line and no metrics)")
    parser.add_argument('--debug', action='store_true',
                        help='full tracebacks for data and checkpoint errors '
                        '(also M2F_MM_DEBUG=1)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _enable_visualization(cfg, args):
    hooks = cfg.default_hooks
    name = 'visualization'
    if name not in hooks:
        raise SystemExit('test.py: --show/--show-dir need a visualization hook '
                         'in default_hooks')
    hooks[name]['draw'] = True
    if args.show:
        hooks[name]['show'] = True
        hooks[name]['wait_time'] = args.wait_time
    if args.show_dir:
        # MMDet's hook takes test_out_dir, MMSeg's takes it too (1.x)
        hooks[name]['test_out_dir'] = args.show_dir
        hooks[name]['interval'] = 1


def build_cfg(args) -> Config:
    from m2f_mm.utils.runner import load_config
    cfg = load_config(args.config, 'test.py', args.cfg_options, args.work_dir,
                      args.launcher, args.tf32)
    if args.compile and not cfg.get('compile'):
        cfg.compile = True
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'test.py: checkpoint {args.checkpoint} does not exist')
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        _enable_visualization(cfg, args)
    if args.amp_dtype and not args.amp:
        raise SystemExit('test.py: --amp-dtype needs --amp')
    if args.amp:
        from mmengine.device import get_device
        device = get_device()
        dtype = args.amp_dtype or ('bfloat16' if device == 'cpu' else 'float16')
        if device == 'cpu' and dtype != 'bfloat16':
            raise SystemExit(f'test.py: mixed precision on CPU runs bfloat16 only, '
                             f'not {dtype}')
        cfg.test_cfg = dict(type='m2f_mm.AutocastTestLoop', dtype=dtype)
    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise SystemExit('test.py: --tta needs tta_model and tta_pipeline '
                             'in the config')
        cfg.tta_model.module = cfg.model
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.model = cfg.tta_model
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise SystemExit(f'test.py: --out must be a .pkl file, got {args.out}')
        # mmengine's DumpResults, but a failed write leaves no partial file
        dump = dict(type='m2f_mm.AtomicDumpResults', out_file_path=args.out)
        evaluators = cfg.test_evaluator
        cfg.test_evaluator = (list(evaluators) if isinstance(evaluators, (list, tuple))
                              else [evaluators]) + [dump]
    return cfg


def main(argv=None):
    args = parse_args(argv)
    import m2f_mm  # noqa: F401  (the m2f_mm scope)
    from m2f_mm.utils.runner import build_runner, run_or_exit
    cfg = build_cfg(args)
    return run_or_exit(lambda: build_runner(cfg).test(), 'test.py', args.debug)


if __name__ == '__main__':
    main()
