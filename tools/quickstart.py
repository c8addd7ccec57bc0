"""Quickstart: train and evaluate a small Mask2Former on the bundled toy data.

1. generates the "toy shapes" dataset under data/toy (if missing),
2. trains configs/quickstart/mask2former_r18_toy-panoptic.py on CPU
   (tools/train.py; progress is logged every 50 iterations),
3. evaluates the untrained and the trained model with CocoPanopticMetric
   (PQ), CocoMetric (mask AP) and IoUMetric (mIoU) (tools/test.py), writing
   PNG overlays of the trained model's predictions,
4. prints the metrics side by side.

    python tools/quickstart.py [--work-dir work_dirs/quickstart] [--iters N]
"""
import argparse
import glob
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = 'configs/quickstart/mask2former_r18_toy-panoptic.py'
METRICS = [('PQ', 'coco_panoptic/PQ'), ('PQ things', 'coco_panoptic/PQ_th'),
           ('PQ stuff', 'coco_panoptic/PQ_st'), ('mask AP', 'coco/segm_mAP'),
           ('mask AP50', 'coco/segm_mAP_50'), ('mIoU', 'sem_seg/mIoU')]


def run(cmd):
    print('$ ' + ' '.join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)


def untrained_checkpoint(work_dir: str) -> str:
    """The model as initialised before training, saved as a checkpoint."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    import m2f_mm  # noqa: F401
    path = osp.join(work_dir, 'untrained.pth')
    if not osp.exists(path):
        cfg = Config.fromfile(osp.join(REPO, CONFIG))
        init_default_scope(cfg.default_scope)
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
        os.makedirs(work_dir, exist_ok=True)
        meta = dict(dataset_meta=dict(cfg.metainfo))  # classes and palette
        torch.save({'state_dict': model.state_dict(), 'meta': meta}, path + '.part')
        os.replace(path + '.part', path)
    return path


def evaluate(checkpoint: str, work_dir: str, show_dir=None) -> dict:
    sys.path.insert(0, osp.join(REPO, 'tools'))
    import test as test_tool
    args = [CONFIG, checkpoint, '--work-dir', work_dir]
    if show_dir:
        args += ['--show-dir', show_dir]
    return test_tool.main(args)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/quickstart')
    parser.add_argument('--iters', type=int, default=None,
                        help='training iterations (default: the config\'s)')
    args = parser.parse_args()
    os.chdir(REPO)
    t0 = time.time()
    py = sys.executable

    run([py, 'tools/make_toy_dataset.py', '--out', 'data/toy'])  # as the config says
    train = [py, 'tools/train.py', CONFIG, '--work-dir', args.work_dir]
    if args.iters:
        train += ['--cfg-options', f'train_cfg.max_iters={args.iters}',
                  f'train_cfg.val_interval={args.iters}',
                  f'default_hooks.checkpoint.interval={args.iters}']
    run(train)
    t_train = time.time() - t0
    with open(osp.join(args.work_dir, 'last_checkpoint')) as f:
        trained = f.read().strip()

    print('evaluating the untrained model ...', flush=True)
    before = evaluate(untrained_checkpoint(args.work_dir), args.work_dir)
    print('evaluating the trained model ...', flush=True)
    after = evaluate(trained, args.work_dir, show_dir='overlays')
    overlays = sorted(glob.glob(osp.join(args.work_dir, '*', 'overlays', '**', '*.png'),
                                recursive=True))

    print('\n| metric | untrained | trained |\n| --- | --- | --- |')
    for name, key in METRICS:
        # CocoMetric reports fractions, the other two percentages
        scale = 100 if key.startswith('coco/') else 1
        print(f'| {name} | {scale * before.get(key, float("nan")):.1f} | '
              f'{scale * after.get(key, float("nan")):.1f} |')
    print(f'\ncheckpoint: {trained}')
    if overlays:
        print(f'overlays:   {len(overlays)} PNGs, e.g. {overlays[0]}')
    print(f'time:       {time.time() - t0:.0f} s in all '
          f'({t_train:.0f} s data + training)')


if __name__ == '__main__':
    main()
