"""Speed of FPNPixelDecoder vs MSDeformAttnPixelDecoder (R-50 COCO panoptic
configs, random weights, CPU): the pixel decoder alone and the whole model's
train step / inference, timed alternately, median of round-by-round ratios.
    python tools/benchmark_pixel_decoders.py [--size 512] [--repeats 5] [--threads 2]"""
import argparse
import os.path as osp
import statistics
import sys

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'tools'))
import benchmark as B  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument('--size', type=int, default=512)
p.add_argument('--repeats', type=int, default=5)
p.add_argument('--threads', type=int, default=2)
args = p.parse_args()
torch.set_num_threads(args.threads)

import m2f_mm  # noqa: E402,F401
from mmengine.config import Config  # noqa: E402
from mmengine.registry import MODELS, init_default_scope  # noqa: E402

init_default_scope('mmdet')
models = {}
for name, path in [('msdeformattn', 'configs/mask2former_r50_coco-panoptic.py'),
                   ('fpn', 'configs/mask2former_r50-fpn_coco-panoptic.py')]:
    cfg = Config.fromfile(path).model
    cfg.backbone.init_cfg = None
    cfg.data_preprocessor.pop('batch_augments', None)
    torch.manual_seed(0)
    with B._quiet_mmengine():
        m = MODELS.build(cfg)
        m.init_weights()
    models[name] = m
    n = sum(p.numel() for p in m.panoptic_head.pixel_decoder.parameters())
    print(f'{name}: pixel decoder {n / 1e6:.2f} M parameters')

inputs, samples = B.synthetic_batch(args.size, 2, seed=0)
with torch.no_grad():
    feats = models['fpn'].backbone(inputs)
feats = [f.detach() for f in feats]


def dec_fwd(m):
    def f():
        with torch.no_grad():
            m.panoptic_head.pixel_decoder(feats)
    return f


def dec_fwd_bwd(m):
    def f():
        mf, pyr = m.panoptic_head.pixel_decoder(feats)
        (mf.sum() + sum(p.sum() for p in pyr)).backward()
        m.zero_grad(set_to_none=True)
    return f


benches = {k: B.Bench(k, m, inputs, samples, infer_batch=1) for k, m in models.items()}
rows = []
for label, fns in [
        ('pixel decoder forward (batch 2)', {k: dec_fwd(m) for k, m in models.items()}),
        ('pixel decoder forward+backward (batch 2)', {k: dec_fwd_bwd(m) for k, m in models.items()}),
        ('whole model train step (batch 2)', {k: b.train_step for k, b in benches.items()}),
        ('whole model inference (batch 1)', {k: b.predict for k, b in benches.items()})]:
    t = B.time_alternating(fns, args.repeats)
    r = statistics.median(B.paired_ratios(t, 'fpn', 'msdeformattn'))
    rows.append([label, f"{statistics.median(t['msdeformattn']):.3f}",
                 f"{statistics.median(t['fpn']):.3f}", f'{r:.2f}x'])
    print(rows[-1], flush=True)
print(B.markdown_table([f'{args.size}², CPU {args.threads} threads', 'MSDeformAttn s',
                        'FPN s', 'FPN / MSDeformAttn'], rows))
