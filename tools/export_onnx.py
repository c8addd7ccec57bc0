"""Export a Mask2Former checkpoint to ONNX (standard operators only).

    python tools/export_onnx.py CONFIG CHECKPOINT --out model.onnx \\
        [--task raw|semantic|panoptic|instance] [--opset 17] [--dynamic] \\
        [--shape H W] [--batch B] [--check]

The graph takes ``image`` (B, 3, H, W) float32 RGB in 0-255 and returns
``cls_logits`` (B, Q, K+1) and ``mask_logits`` (B, Q, H/4, W/4) (plus
``semantic`` (B, H, W) with ``--task semantic``); panoptic and instance
results come from ``m2f_mm.deploy.postprocess`` (tools/onnx_infer.py uses
it). ``--dynamic`` makes batch, H and W free (multiples of 32); without it
the graph is fixed at ``--batch`` × ``--shape``. ``--check`` runs the graph
in onnxruntime on a random image of another size and prints the largest
difference from PyTorch. See m2f_mm/deploy/onnx_export.py.

The checkpoint is read by m2f_mm's loader (m2f_mm/utils/checkpoint.py): one
that is truncated, runs code or does not cover the model ends the tool with
one line; ``--cfg-options load_partial=True`` exports one that covers part of
the model (the rest as initialised).
"""
import argparse
import os
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(1, REPO)


def main(argv=None):
    from m2f_mm.utils.cli import add_model_options
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--task', choices=['raw', 'semantic', 'panoptic', 'instance'],
                        help="default: 'semantic' for MMSegmentation configs, else "
                             "'panoptic' if the config's test_cfg has panoptic_on, "
                             "else 'instance'")
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--dynamic', action='store_true',
                        help='dynamic batch and H, W (multiples of 32)')
    parser.add_argument('--shape', type=int, nargs=2, default=[128, 128],
                        metavar=('H', 'W'), help='traced input size (default 128 128)')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--check', action='store_true',
                        help='compare onnxruntime with PyTorch on a random image')
    add_model_options(parser)
    args = parser.parse_args(argv)
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            sys.exit(f'export_onnx.py: {what} {path} does not exist')

    from m2f_mm.deploy import build_model_from_config, default_task, export_onnx
    from mmengine.config import Config

    from m2f_mm.utils.runner import run_or_exit
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model, cfg = run_or_exit(lambda: build_model_from_config(cfg, args.checkpoint),
                             'export_onnx.py', args.debug)
    task = args.task or default_task(cfg)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    t0 = time.time()
    meta = export_onnx(model, args.out, task=task, opset=args.opset,
                       dynamic=args.dynamic,
                       input_shape=(args.batch, 3, *args.shape),
                       config_text=cfg.pretty_text)
    size_mb = osp.getsize(args.out) / 2**20
    shape = ('dynamic batch/H/W' if args.dynamic else
             f'fixed {args.batch}x3x{args.shape[0]}x{args.shape[1]}')
    print(f'wrote {args.out}: task {task}, opset {args.opset}, {shape}, '
          f'{size_mb:.1f} MB, {meta["num_classes"]} classes, '
          f'{meta["num_queries"]} queries ({time.time() - t0:.0f} s)')
    if (cfg.model.get('test_cfg') or {}).get('mode') == 'slide':
        print('note: the config tests MMSeg-style in sliding windows; the graph (and '
              'tools/onnx_infer.py) runs whole images')
    if args.check:
        from m2f_mm.deploy import compare_with_pytorch
        shape = (args.batch, 3, *args.shape)
        if args.dynamic:  # another batch and a non-square size than traced
            shape = (args.batch + 1, 3, args.shape[0] + 32, args.shape[1] + 64)
        diffs = compare_with_pytorch(model, args.out, shape, task)
        print('onnxruntime vs PyTorch at ' + 'x'.join(map(str, shape)) + ': ' +
              ', '.join(f'{k} {v:.2e}' if isinstance(v, float) else f'{k} {v}'
                        for k, v in diffs.items()))


if __name__ == '__main__':
    main()
