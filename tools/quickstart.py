"""Quickstart: train and evaluate a small Mask2Former on the bundled toy data.

1. generates the "toy shapes" dataset under data/toy (if missing),
2. pretrains the ResNet-18 on the toy train split's shapes
   (tools/pretrain_backbone.py, 800 steps; the stand-in for the ImageNet
   pretraining the paper's backbones start from), saved as
   WORK_DIR/backbone_toyshapes.pth,
3. trains configs/quickstart/mask2former_r18-toyshapes_toy-panoptic.py on the CPU
   (tools/train.py; progress logged every 50 iterations, validation a few
   times on the way), as 2 processes with one thread each (torchrun, DDP
   over gloo) where the machine has 2 or more cores and no GPU: on 2 cores
   that trains ~1.5x faster than one process with two threads; one process
   takes batch 8 instead of 4, so the schedule sees 8 images per iteration
   either way,
4. draws the training curves (tools/plot_curves.py) to WORK_DIR/curves.png,
5. evaluates the model before training (pretrained backbone, the rest at
   random) and the trained model with CocoPanopticMetric
   (PQ), CocoMetric (mask AP) and IoUMetric (mIoU) (tools/test.py),
6. draws ground truth | prediction overlays of the val images and a grid
   of them (tools/draw_overlays.py) under WORK_DIR/overlays,
7. prints the metrics side by side and per class, and saves both tables
   as WORK_DIR/results.md.

    python tools/quickstart.py [--work-dir work_dirs/quickstart] [--iters N]
        [--nproc N] [--pretrain-steps 800] [--seed 0]
"""
import argparse
import math
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Optional, Tuple

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path[:0] = [REPO, osp.join(REPO, 'tools')]  # this checkout's code and tools
CONFIG = 'configs/quickstart/mask2former_r18-toyshapes_toy-panoptic.py'
BACKBONE = 'backbone_toyshapes.pth'  # in the work dir; the config's init_cfg
DATA = 'data/toy'  # as the config says
# (row name, logged key, factor to percent): CocoMetric logs fractions
METRICS = [('PQ', 'coco_panoptic/PQ', 1), ('PQ things', 'coco_panoptic/PQ_th', 1),
           ('PQ stuff', 'coco_panoptic/PQ_st', 1), ('mask AP', 'coco/segm_mAP', 100),
           ('mask AP50', 'coco/segm_mAP_50', 100), ('mIoU', 'sem_seg/mIoU', 1)]
NUM_OVERLAYS, NUM_GRID = 16, 6


def run(cmd, **env_vars):
    print('$ ' + ' '.join(f'{k}={v}' for k, v in env_vars.items()) +
          (' ' if env_vars else '') + ' '.join(cmd), flush=True)
    env = dict(os.environ, **env_vars)
    env['PYTHONPATH'] = os.pathsep.join([REPO] + [p for p in env.get(
        'PYTHONPATH', '').split(os.pathsep) if p])
    subprocess.run(cmd, cwd=REPO, check=True, env=env)


def train_command(py: str, nproc: int, args: list) -> Tuple[list, dict]:
    """tools/train.py, or torchrun over ``nproc`` CPU processes with
    ``cores // nproc`` threads each; the command and its extra environment."""
    if nproc <= 1:
        return [py, 'tools/train.py'] + args, {}
    threads = max(1, (os.cpu_count() or nproc) // nproc)
    return ([py, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
             '--master_port=29512', 'tools/train.py'] + args + ['--launcher', 'pytorch'],
            dict(OMP_NUM_THREADS=str(threads)))


IMAGES_PER_ITER = 8  # the config's schedule: 2 processes x batch 4


def batch_per_process(nproc: int) -> int:
    """The train batch of each of ``nproc`` processes that keeps the
    config's 8 images per iteration (one process, as on a GPU: 8); where 8
    does not divide, the nearest, and the iteration sees a few more or
    fewer images."""
    if nproc < 1:
        raise ValueError(f'--nproc must be 1 or more, got {nproc}')
    return max(1, round(IMAGES_PER_ITER / nproc))


def untrained_checkpoint(work_dir: str, backbone: Optional[str] = None) -> str:
    """The model as initialised before training, saved as a checkpoint: the
    backbone from ``backbone`` (tools/pretrain_backbone.py's ``--out``) or,
    without it, initialised as ResNet's default; the rest at random."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    import m2f_mm  # noqa: F401
    from m2f_mm.utils.fileio import atomic_write
    path = osp.join(work_dir, 'untrained.pth')
    cfg = Config.fromfile(osp.join(REPO, CONFIG))
    if backbone:
        cfg.model.backbone.init_cfg.checkpoint = backbone
    else:
        cfg.model.backbone.init_cfg = None
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    meta = dict(dataset_meta=dict(cfg.metainfo))  # classes and palette
    atomic_write(path, lambda f: torch.save(
        {'state_dict': model.state_dict(), 'meta': meta}, f))
    return path


def evaluate(checkpoint: str, work_dir: str, out=None) -> dict:
    import test as test_tool
    args = [CONFIG, checkpoint, '--work-dir', work_dir]
    if out:
        args += ['--out', out]
    return test_tool.main(args)


def _cell(value: float) -> str:
    return '–' if value is None or math.isnan(value) else f'{value:.1f}'


def summary_table(before: dict, after: dict) -> str:
    rows = ['| metric (toy val) | before training | trained |', '| --- | --- | --- |']
    for name, key, scale in METRICS:
        rows.append(f'| {name} | {_cell(scale * before.get(key, math.nan))} | '
                    f'{_cell(scale * after.get(key, math.nan))} |')
    return '\n'.join(rows)


def per_class_table(metrics: dict, classes, thing_classes) -> str:
    """PQ / SQ / RQ, mask AP (things) and IoU of every class, in percent."""
    rows = ['| class | kind | PQ | SQ | RQ | mask AP | IoU |',
            '| --- | --- | --- | --- | --- | --- | --- |']
    for name in classes:
        thing = name in thing_classes
        ap = metrics.get(f'coco/{name}_precision', math.nan) * 100 if thing else None
        cells = [metrics.get(f'coco_panoptic/{k}_{name}', math.nan)
                 for k in ('PQ', 'SQ', 'RQ')]
        cells += [ap, metrics.get(f'sem_seg/IoU_{name}', math.nan)]
        rows.append(f'| {name} | {"thing" if thing else "stuff"} | ' +
                    ' | '.join(_cell(c) for c in cells) + ' |')
    return '\n'.join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/quickstart')
    parser.add_argument('--iters', type=int, default=None,
                        help='training iterations (default: the config\'s)')
    parser.add_argument('--nproc', type=int, default=None,
                        help='training processes (default: 2 on a CPU machine '
                        'with 2 or more cores, else 1: a GPU, or one core); '
                        'the batch per process keeps the schedule\'s 8 images '
                        'per iteration (2 x 4, or 1 x 8)')
    parser.add_argument('--pretrain-steps', type=int, default=800,
                        help='backbone pretraining steps (tools/pretrain_backbone.py)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the pretraining and the training (the '
                        'config\'s randomness.seed is 0); another seed shows '
                        'how far runs spread')
    args = parser.parse_args()
    os.chdir(REPO)
    t0 = time.time()
    py = sys.executable

    run([py, 'tools/make_toy_dataset.py', '--out', DATA])
    backbone = osp.join(args.work_dir, BACKBONE)
    run([py, 'tools/pretrain_backbone.py', '--data', DATA,
         '--steps', str(args.pretrain_steps), '--seed', str(args.seed),
         '--out', backbone])
    train = [CONFIG, '--work-dir', args.work_dir,
             '--cfg-options', f'model.backbone.init_cfg.checkpoint={backbone}',
             f'randomness.seed={args.seed}']
    if args.iters is not None and args.iters < 1:
        parser.error(f'--iters must be 1 or more, got {args.iters}')
    if args.iters:
        train += [f'train_cfg.max_iters={args.iters}',
                  f'train_cfg.val_interval={args.iters}',
                  f'default_hooks.checkpoint.interval={args.iters}']
        from mmengine.config import Config
        log_every = Config.fromfile(osp.join(REPO, CONFIG)).default_hooks.logger.interval
        if args.iters < log_every:  # else no loss is logged for the curves
            train += [f'default_hooks.logger.interval={args.iters}']
    nproc = args.nproc
    if nproc is None:
        import torch
        nproc = 1 if torch.cuda.is_available() or (os.cpu_count() or 1) < 2 else 2
    batch = batch_per_process(nproc)
    if batch * nproc != IMAGES_PER_ITER:
        print(f'note: {nproc} processes x batch {batch} = {batch * nproc} images per '
              f'iteration; the schedule was set for {IMAGES_PER_ITER}', flush=True)
    train += [f'train_dataloader.batch_size={batch}']
    cmd, env = train_command(py, nproc, train)
    run(cmd, **env)
    t_train = time.time() - t0  # data, pretraining and training
    with open(osp.join(args.work_dir, 'last_checkpoint')) as f:
        trained = f.read().strip()

    from draw_overlays import draw_overlays
    from mmengine.config import Config
    from mmengine.fileio import load
    from plot_curves import plot_curves
    curves = plot_curves(args.work_dir)
    print('evaluating the model before training (pretrained backbone) ...', flush=True)
    before = evaluate(untrained_checkpoint(args.work_dir, backbone), args.work_dir)
    print('evaluating the trained model ...', flush=True)
    preds = osp.join(args.work_dir, 'predictions.pkl')
    after = evaluate(trained, args.work_dir, out=preds)
    meta = Config.fromfile(CONFIG).metainfo
    overlays, grid = draw_overlays(
        load(preds), f'{DATA}/annotations/panoptic_val.json',
        f'{DATA}/annotations/panoptic_val', osp.join(args.work_dir, 'overlays'),
        meta['classes'], meta['palette'], limit=NUM_OVERLAYS, num_grid=NUM_GRID)

    summary = summary_table(before, after)
    per_class = per_class_table(after, meta['classes'], meta['thing_classes'])
    print('\n' + summary + '\n\nper class, trained model:\n\n' + per_class)
    results = osp.join(args.work_dir, 'results.md')
    with open(results, 'w') as f:
        f.write(f'# Quickstart results\n\ncheckpoint: `{trained}`\n\n{summary}\n\n'
                f'## Per class (trained model)\n\n{per_class}\n')
    print(f'\ncheckpoint: {trained}')
    print(f'tables:     {results}')
    print(f'curves:     {curves}')
    print(f'overlays:   {len(overlays)} PNGs (ground truth | prediction), '
          f'e.g. {overlays[0]}; grid: {grid}')
    print(f'time:       {time.time() - t0:.0f} s in all '
          f'({t_train:.0f} s data + pretraining + training)')


if __name__ == '__main__':
    main()
