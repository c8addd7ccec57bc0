"""Segment images with an exported Mask2Former in onnxruntime: the same PNG
overlays and predictions as tools/demo.py.

    python tools/onnx_infer.py IMAGE_OR_DIR model.onnx [--out-dir outputs]

The graph comes from tools/export_onnx.py, which stores the model's config,
classes, palette and fusion settings in it. Images go through the config's
test pipeline and MMDetection's DetInferencer (panoptic / instance) or
MMSegmentation's MMSegInferencer (semantic) exactly as in tools/demo.py;
only the model is replaced: onnxruntime runs the graph, and
``m2f_mm.deploy.postprocess`` (numpy) turns its logits into results. So the
outputs are ``<out-dir>/vis/*.png`` overlays and ``<out-dir>/preds/*.json``
(detection) or ``<out-dir>/pred/*.png`` (semantic).

Inputs that are not images (a missing path, an empty folder, a file that does
not decode) are named in one line each, as in tools/demo.py; the readable
images of a folder are still segmented, and the exit status is 1 if any input
was not read.
"""
import argparse
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(1, REPO)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('inputs', help='an image file or a folder of images')
    parser.add_argument('model', help='a .onnx file from tools/export_onnx.py')
    parser.add_argument('--out-dir', default='outputs')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='instance score threshold for the overlays')
    parser.add_argument('--threads', type=int, default=None,
                        help='onnxruntime intra-op threads')
    parser.add_argument('--debug', action='store_true',
                        help='full tracebacks instead of one-line errors (also '
                        'M2F_MM_DEBUG=1)')
    args = parser.parse_args(argv)
    if not osp.exists(args.model):
        sys.exit(f'onnx_infer.py: model {args.model} does not exist')
    from m2f_mm.utils.runner import run_or_exit
    if not run_or_exit(lambda: run(args), 'onnx_infer.py', args.debug):
        raise SystemExit(1)  # the unreadable inputs are named above


def run(args) -> bool:
    """Segment the inputs; True when every input was read."""
    from m2f_mm.deploy.runtime import OnnxMask2Former
    from m2f_mm.utils.images import images_or_exit
    images, failed = images_or_exit(args.inputs, 'onnx_infer.py')
    runner = OnnxMask2Former(args.model, threads=args.threads)
    if not runner.meta.get('config'):
        sys.exit(f'onnx_infer.py: {args.model} carries no config; export it again '
                 'with tools/export_onnx.py')
    inferencer = build_inferencer(runner)
    if runner.meta['host'] == 'mmseg':
        inferencer(images, out_dir=args.out_dir)
    else:
        inferencer(images, out_dir=args.out_dir, no_save_pred=False,
                   pred_score_thr=args.score_thr)
    print(f'wrote overlays of {len(images)} image(s) to '
          f'{osp.join(args.out_dir, "vis")} and predictions under {args.out_dir}')
    return not failed


def build_inferencer(runner):
    """MMDetection's or MMSegmentation's inferencer on the graph's config,
    with :class:`OnnxModel` in place of the PyTorch model."""
    import torch
    from mmengine.config import Config
    from mmengine.structures import InstanceData, PixelData

    import m2f_mm  # noqa: F401  (compat fixes, m2f_mm scope)

    cfg = Config.fromstring(runner.meta['config'], file_format='.py')

    class OnnxModel(torch.nn.Module):
        """What the inferencers call: ``test_step`` on a collated batch of
        uint8 BGR images (C, H, W) and their data samples."""

        def __init__(self):
            super().__init__()
            self.dataset_meta = dict(runner.meta['dataset_meta'])
            if 'palette' in self.dataset_meta:  # JSON gave lists; the visualizers want tuples
                self.dataset_meta['palette'] = [tuple(c) for c in self.dataset_meta['palette']]
            self.cfg = cfg

        def test_step(self, data):
            # BGR (as mmcv loads) to RGB, the graph's input
            images = [img.numpy()[::-1].transpose(1, 2, 0) for img in data['inputs']]
            batch, _ = runner.preprocess(images)
            outputs = runner(batch)
            samples = data['data_samples']
            for i, sample in enumerate(samples):
                res = runner.results(outputs, i, img_shape=images[i].shape[:2],
                                     ori_shape=sample.metainfo.get('ori_shape'))
                if 'panoptic' in res:
                    sample.pred_panoptic_seg = PixelData(
                        sem_seg=torch.from_numpy(res['panoptic'])[None])
                if 'instance' in res:
                    sample.pred_instances = InstanceData(
                        **{k: torch.from_numpy(v) for k, v in res['instance'].items()})
                if 'semantic' in res:
                    sem = PixelData(**{'data' if runner.meta['host'] == 'mmseg'
                                       else 'sem_seg': torch.from_numpy(res['semantic'])[None]})
                    sample.pred_sem_seg = sem
            return samples

    if runner.meta['host'] == 'mmseg':
        from mmseg.apis import MMSegInferencer as Base
        kwargs = {}
    else:
        from mmdet.apis import DetInferencer as Base
        kwargs = dict(show_progress=False)

    class OnnxInferencer(Base):
        def _init_model(self, cfg, weights, device='cpu'):
            return OnnxModel()

    return OnnxInferencer(model=cfg, weights=None, device='cpu', **kwargs)


if __name__ == '__main__':
    main()
