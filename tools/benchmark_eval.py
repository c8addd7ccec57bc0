"""MMDetection's CocoPanopticMetric + CocoMetric (segm) against ours
(FastCocoPanopticMetric + FastCocoMetric) on a generated COCO-val-shaped
set, end to end: ``process`` over every batch, then ``evaluate``.

Each implementation runs in a fresh subprocess, which reports its wall time
and its peak RSS above its start (the predictions are made batch by batch
in both and are not timed). Both must give the same numbers; the table
says whether they did.

    python tools/benchmark_eval.py                       # 5,000 images, 160×213
    python tools/benchmark_eval.py --images 500 --height 480 --width 640
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time

TOOLS = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, TOOLS)

from bench import REPO  # noqa: E402,F401  (puts the checkout on sys.path)

NAMES = {'mmdet': 'MMDetection 3.3', 'ours': 'm2f_mm (hotcoco)'}


def _metrics(impl: str, data: dict):
    from mmdet.evaluation.metrics import CocoMetric, CocoPanopticMetric

    from m2f_mm.evaluation import FastCocoMetric, FastCocoPanopticMetric
    pan_cls, inst_cls = ((CocoPanopticMetric, CocoMetric) if impl == 'mmdet'
                         else (FastCocoPanopticMetric, FastCocoMetric))
    pan = pan_cls(ann_file=data['panoptic_json'], seg_prefix=data['seg_prefix'], nproc=1)
    pan.dataset_meta = data['dataset_meta']
    inst = inst_cls(ann_file=data['instances_json'], metric='segm')
    inst.dataset_meta = dict(classes=data['dataset_meta']['thing_classes'])
    return pan, inst


def run_one(impl: str, root: str) -> dict:
    """One implementation, in this process: times and peak RSS above start.

    Args:
        impl: ``mmdet`` or ``ours``.
        root: where ``write_coco_like_set`` wrote the set (``data.json``).

    Returns:
        dict: seconds for process / evaluate of each metric, the peak RSS
        delta in MiB and the metric values.
    """
    from bench.coco_eval_data import predictions
    from bench.memory import peak_rss_delta
    with open(osp.join(root, 'data.json')) as f:
        data = json.load(f)
    pan, inst = _metrics(impl, data)
    out = dict(pan_process=0.0, inst_process=0.0)
    with peak_rss_delta(out):
        for batch in predictions(data):
            for name, metric in (('inst', inst), ('pan', pan)):  # MMDet's
                start = time.perf_counter()  # panoptic metric edits the batch
                metric.process({}, batch)
                out[f'{name}_process'] += time.perf_counter() - start
        for name, metric in (('pan', pan), ('inst', inst)):
            start = time.perf_counter()
            out[f'{name}_values'] = metric.evaluate(len(data['samples']))
            out[f'{name}_evaluate'] = time.perf_counter() - start
    return out


def _table(args, res: dict) -> str:
    mm, ours = res['mmdet'], res['ours']
    rows = [('panoptic: process', 'pan_process'), ('panoptic: evaluate', 'pan_evaluate'),
            ('mask AP: process', 'inst_process'), ('mask AP: evaluate', 'inst_evaluate')]
    lines = [f'{args.images} images, {args.height}×{args.width}, about '
             f'{args.segments} GT segments and at least {args.dets} instance '
             'predictions each', '',
             f'| | {NAMES["mmdet"]} | {NAMES["ours"]} | MMDet / ours |',
             '| --- | --- | --- | --- |']
    for label, key in rows:
        lines.append(f'| {label} | {mm[key]:.2f} s | {ours[key]:.2f} s | '
                     f'{mm[key] / max(ours[key], 1e-9):.1f}× |')
    for impl in (mm, ours):
        impl['total'] = sum(impl[k] for _, k in rows)
    lines.append(f'| **total** | {mm["total"]:.2f} s | {ours["total"]:.2f} s | '
                 f'{mm["total"] / ours["total"]:.1f}× |')
    lines.append(f'| peak RSS above start | {mm["peak_mib"]:.0f} MiB | '
                 f'{ours["peak_mib"]:.0f} MiB | |')
    worst = max(abs(mm[m][k] - ours[m][k]) for m in ('pan_values', 'inst_values')
                for k in mm[m])
    lines += ['', f'largest difference between the two implementations\' '
              f'values: {worst:.3g}']
    return '\n'.join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--images', type=int, default=5000)
    parser.add_argument('--height', type=int, default=160)
    parser.add_argument('--width', type=int, default=213)
    parser.add_argument('--segments', type=int, default=7, help='GT segments per image')
    parser.add_argument('--dets', type=int, default=20, help='instance predictions per image')
    parser.add_argument('--impl', choices=list(NAMES), help=argparse.SUPPRESS)
    parser.add_argument('--root', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.impl:  # the subprocess
        print(json.dumps(run_one(args.impl, args.root), default=float))
        return
    from bench.coco_eval_data import write_coco_like_set
    with tempfile.TemporaryDirectory() as root:
        data = write_coco_like_set(root, args.images, args.height, args.width,
                                   args.segments, args.dets)
        with open(osp.join(root, 'data.json'), 'w') as f:
            json.dump(data, f)
        res = {}
        for impl in NAMES:
            proc = subprocess.run(
                [sys.executable, __file__, '--impl', impl, '--root', root],
                capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS='ignore'))
            if proc.returncode:
                sys.exit(f'benchmark_eval: the {impl} run failed:\n{proc.stderr[-3000:]}')
            res[impl] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(_table(args, res))


if __name__ == '__main__':
    main()
