"""Segment images with a trained model: PNG overlays and JSON predictions.

    python tools/demo.py IMAGE_OR_DIR CONFIG CHECKPOINT [--out-dir outputs]

Runs MMDetection's DetInferencer (configs with default_scope='mmdet':
panoptic / instance) or MMSegmentation's MMSegInferencer (default_scope=
'mmseg': semantic) on the model the config describes, so the outputs are the
ones those projects write: ``<out-dir>/vis/*.png`` overlays and
``<out-dir>/preds/*.json`` (detection) or ``<out-dir>/pred/*.png`` (semantic).
"""
import argparse
import os.path as osp
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('inputs', help='an image file or a folder of images')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out-dir', default='outputs')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='instance score threshold for the overlays')
    args = parser.parse_args(argv)
    for path, what in ((args.inputs, 'input'), (args.config, 'config'),
                       (args.checkpoint, 'checkpoint')):
        if not osp.exists(path):
            sys.exit(f'demo.py: {what} {path} does not exist')

    import m2f_mm  # noqa: F401  (the m2f_mm scope)
    from m2f_mm.patches import allow_runner_checkpoint_globals
    allow_runner_checkpoint_globals()  # Runner checkpoints load on torch >= 2.6
    from mmengine.config import Config
    scope = Config.fromfile(args.config).get('default_scope', 'mmdet')
    if scope == 'mmseg':
        from mmseg.apis import MMSegInferencer
        inferencer = MMSegInferencer(model=args.config, weights=args.checkpoint,
                                     device=args.device)
        inferencer(args.inputs, out_dir=args.out_dir, return_datasamples=False)
    else:
        from mmdet.apis import DetInferencer
        inferencer = DetInferencer(model=args.config, weights=args.checkpoint,
                                   device=args.device, scope='mmdet', show_progress=False)
        inferencer(args.inputs, out_dir=args.out_dir, no_save_pred=False,
                   pred_score_thr=args.score_thr)
    print(f'wrote overlays to {osp.join(args.out_dir, "vis")} and predictions '
          f'under {args.out_dir}')


if __name__ == '__main__':
    main()
