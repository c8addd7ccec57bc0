"""Quickstart smoke run: build Mask2Former from a config and segment an image.

(The full quickstart — generate the toy dataset, train, evaluate and write
overlays — replaces this once it lands.)
"""
import argparse
import time

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--config', default='configs/mask2former_r50_coco-panoptic.py')
    parser.add_argument('--size', type=int, default=256)
    args = parser.parse_args()

    import m2f_mm  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample

    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    t0 = time.time()
    model = MODELS.build(cfg.model).eval()
    print(f'built {type(model).__name__} from {args.config}: '
          f'{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters '
          f'({time.time() - t0:.1f}s)')
    s = args.size
    sample = DetDataSample(metainfo=dict(img_shape=(s, s), ori_shape=(s, s),
                                         pad_shape=(s, s), batch_input_shape=(s, s),
                                         scale_factor=(1.0, 1.0)))
    torch.manual_seed(0)
    t0 = time.time()
    with torch.no_grad():
        out = model.predict(torch.randn(1, 3, s, s), [sample])[0]
    pan = out.pred_panoptic_seg.sem_seg
    print(f'predicted a {tuple(pan.shape[-2:])} panoptic map with '
          f'{len(torch.unique(pan))} segment ids and {len(out.pred_instances)} '
          f'instances in {time.time() - t0:.1f}s (random weights)')


if __name__ == '__main__':
    main()
