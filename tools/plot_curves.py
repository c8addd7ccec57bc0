"""Draw the training curves of a run from mmengine's logged scalars.

Reads ``WORK_DIR/<timestamp>/vis_data/scalars.json`` (the latest run in the
work dir that logged a training loss) and writes one PNG: the total loss per
logged iteration on the left, and PQ (all / things / stuff), mask AP and mIoU
at each validation on the right (whichever of them the run logged). The
role of MMDetection's ``tools/analysis_tools/analyze_logs.py``, for any of
our runs::

    python tools/plot_curves.py work_dirs/quickstart [--out curves.png]
"""
import argparse
import glob
import json
import os.path as osp
from typing import Dict, List, Optional, Tuple

# (logged key, label, factor to percent): CocoMetric logs fractions
VAL_CURVES = [
    ('coco_panoptic/PQ', 'PQ', 1.0),
    ('coco_panoptic/PQ_th', 'PQ things', 1.0),
    ('coco_panoptic/PQ_st', 'PQ stuff', 1.0),
    ('coco/segm_mAP', 'mask AP', 100.0),
    ('sem_seg/mIoU', 'mIoU', 1.0),
]


def find_scalars(work_dir: str) -> str:
    """The ``scalars.json`` of the latest training run under ``work_dir``
    (test runs log no loss and are skipped)."""
    paths = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    for path in reversed(paths):  # timestamps sort in time order
        with open(path) as f:
            if any('"loss"' in line for line in f):
                return path
    raise FileNotFoundError(f'plot_curves: no */vis_data/scalars.json with a '
                            f'training loss under {work_dir}')


def read_scalars(path: str) -> Tuple[List[Tuple[int, float]], Dict[str, list]]:
    """Training loss as (iteration, loss) and each validation metric as
    (iteration, value in percent).

    With ``LoggerHook(log_metric_by_epoch=False)`` validation rows carry the
    iteration as ``step``; by default mmengine logs the epoch there (0
    throughout an iteration-based run), and such a validation is placed at
    the last logged training iteration before it.
    """
    loss, val = [], {key: [] for key, _, _ in VAL_CURVES}
    last_iter = None
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            if 'loss' in row:
                last_iter = row.get('iter', row.get('step'))
                loss.append((last_iter, row['loss']))
            step = row.get('step', 0)
            at = step if last_iter is None or step >= last_iter else last_iter
            for key, _, scale in VAL_CURVES:
                if key in row and row[key] >= 0:  # -1: not computed
                    val[key].append((at, scale * row[key]))
    return loss, val


def plot_curves(work_dir: str, out: Optional[str] = None) -> str:
    """Draw the curves of the latest training run in ``work_dir``; returns
    the PNG's path (default ``work_dir/curves.png``)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    path = find_scalars(work_dir)
    loss, val = read_scalars(path)
    out = out or osp.join(work_dir, 'curves.png')
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    if loss:
        ax_loss.plot(*zip(*loss), color='tab:blue', lw=1.5)
        ax_loss.set_yscale('log')
    ax_loss.set(title='training loss (all prediction sets)', xlabel='iteration',
                ylabel='total loss')
    ax_loss.grid(alpha=0.3, which='both')
    for key, label, _ in VAL_CURVES:
        if val[key]:
            ax_val.plot(*zip(*val[key]), marker='o', lw=1.5, label=label)
    ax_val.set(title='validation', xlabel='iteration', ylabel='%', ylim=(0, 100))
    ax_val.grid(alpha=0.3)
    if any(val.values()):
        ax_val.legend(loc='lower right')
    if loss:
        ax_val.set_xlim(0, max(loss[-1][0], *[v[-1][0] for v in val.values() if v]))
    fig.suptitle(osp.relpath(path, osp.dirname(osp.abspath(work_dir.rstrip('/')))),
                 fontsize=9, color='0.4')
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dir', help='work dir of a training run')
    parser.add_argument('--out', help='PNG to write (default WORK_DIR/curves.png)')
    args = parser.parse_args(argv)
    try:
        print(f'curves: {plot_curves(args.work_dir, args.out)}')
    except FileNotFoundError as e:
        raise SystemExit(str(e))


if __name__ == '__main__':
    main()
