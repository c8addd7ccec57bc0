"""Segment images with a trained model: PNG overlays and JSON predictions.

    python tools/demo.py IMAGE_OR_DIR CONFIG CHECKPOINT [--out-dir outputs]

Runs MMDetection's DetInferencer (configs with default_scope='mmdet':
panoptic / instance) or MMSegmentation's MMSegInferencer (default_scope=
'mmseg': semantic) on the model the config describes, so the outputs are the
ones those projects write: ``<out-dir>/vis/*.png`` overlays and
``<out-dir>/preds/*.json`` (detection) or ``<out-dir>/pred/*.png`` (semantic).

Inputs that are not images (a missing path, an empty folder, a file that does
not decode) are named in one line each; the images of a folder that do decode
are still segmented, and the exit status is 1 if any input was not read. The
checkpoint is read by m2f_mm's loader (m2f_mm/utils/checkpoint.py): one that
is truncated, runs code or is another model's ends the tool with one line;
``--cfg-options load_partial=True`` loads one that covers part of the model.
"""
import argparse
import os.path as osp
import sys


def parse_args(argv=None):
    from m2f_mm.utils.cli import add_model_options
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('inputs', help='an image file or a folder of images')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out-dir', default='outputs')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='instance score threshold for the overlays')
    add_model_options(parser)
    return parser.parse_args(argv)


def checked_inferencer(base, checkpoint_path: str, partial: bool):
    """``base`` (DetInferencer or MMSegInferencer) whose model is filled from
    ``checkpoint_path`` by m2f_mm's loader: read once, refused in one line if
    it does not cover the model (unless ``partial``); what the inferencer
    does with the checkpoint's meta (classes, palette) is unchanged."""
    from m2f_mm.utils.checkpoint import check_covers, read_checkpoint
    checkpoint = read_checkpoint(checkpoint_path)

    class CheckedInferencer(base):

        def _load_weights_to_model(self, model, _, cfg):
            # the inferencer is built with weights=None: ours are passed here
            check_covers(model, checkpoint, checkpoint_path, partial)
            super()._load_weights_to_model(model, checkpoint, cfg)

    return CheckedInferencer


def run(args) -> bool:
    """Segment the inputs; True when every input was read."""
    import m2f_mm  # noqa: F401  (the m2f_mm scope)
    from m2f_mm.utils.checkpoint import PARTIAL_KEY
    from m2f_mm.utils.images import images_or_exit
    from m2f_mm.utils.runner import load_config
    images, failed = images_or_exit(args.inputs, 'demo.py')
    cfg = load_config(args.config, 'demo.py', args.cfg_options, work_dir='.')
    partial = bool(cfg.get(PARTIAL_KEY, False))
    if cfg.get('default_scope', 'mmdet') == 'mmseg':
        from mmseg.apis import MMSegInferencer
        inferencer = checked_inferencer(MMSegInferencer, args.checkpoint, partial)(
            model=cfg, weights=None, device=args.device)
        inferencer(images, out_dir=args.out_dir, return_datasamples=False)
    else:
        from mmdet.apis import DetInferencer
        inferencer = checked_inferencer(DetInferencer, args.checkpoint, partial)(
            model=cfg, weights=None, device=args.device, scope='mmdet',
            show_progress=False)
        inferencer(images, out_dir=args.out_dir, no_save_pred=False,
                   pred_score_thr=args.score_thr)
    print(f'wrote overlays of {len(images)} image(s) to '
          f'{osp.join(args.out_dir, "vis")} and predictions under {args.out_dir}')
    return not failed


def main(argv=None):
    args = parse_args(argv)
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.exists(path):
            sys.exit(f'demo.py: {what} {path} does not exist')
    from m2f_mm.utils.runner import run_or_exit
    if not run_or_exit(lambda: run(args), 'demo.py', args.debug):
        raise SystemExit(1)  # the unreadable inputs are named above


if __name__ == '__main__':
    main()
