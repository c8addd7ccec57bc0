"""Head time per training step with targets built by BuildMaskTargets (in the
dataloader workers) against targets the head derives itself from MMDet
samples: the same R-50-size head (133 classes, 100 queries, K = 12544), the
same batch (2 × 512², 10 things + 5 stuff bands), alternated A B A B.

    python tools/benchmark_targets.py [--repeats 5]
"""
import argparse
import copy
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests'))  # synthetic samples, configs


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--size', type=int, default=512)
    args = parser.parse_args()

    import torch
    import m2f_mm  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from m2f_mm.datasets.transforms import BuildMaskTargets
    from m2f_mm.models.heads.hosts import targets_from_samples
    from reference_models import ours_cfg
    from synthetic import make_sample
    register_all_modules(init_default_scope=False)
    torch.set_num_threads(2)

    size = args.size
    cfg = ours_cfg(num_things=80, num_stuff=53, num_queries=100, feat=256,
                   num_points=12544)
    cfg.backbone = dict(type='mmdet.ResNet', depth=50, num_stages=4,
                        out_indices=(0, 1, 2, 3), frozen_stages=-1,
                        norm_cfg=dict(type='BN', requires_grad=False),
                        norm_eval=True, style='pytorch', init_cfg=None)
    cfg.panoptic_head.in_channels = [256, 512, 1024, 2048]
    cfg.panoptic_head.pixel_decoder.ffn_dims = 1024
    cfg.panoptic_head.transformer_decoder.ffn_dims = 2048
    model = MODELS.build(cfg).train()
    head = model.panoptic_head

    in_head = [make_sample(size, size, num_things_classes=80, num_stuff_classes=5,
                           num_things=10, seed=i) for i in range(2)]
    from_transform = copy.deepcopy(in_head)
    build = BuildMaskTargets(num_things_classes=80, num_stuff_classes=53)
    for sample in from_transform:
        build.transform(dict(data_samples=sample))
    feats = [f.detach() for f in model.extract_feat(torch.randn(2, 3, size, size))]

    def step(samples):
        t = time.perf_counter()
        sum(head.loss(feats, samples).values()).backward()
        return time.perf_counter() - t

    def targets(samples):
        t = time.perf_counter()
        for sample in samples:
            targets_from_samples([sample], head.counts, head.ignore_index)[0]
        return time.perf_counter() - t

    step(in_head), step(from_transform)  # warm-up
    times = {k: [] for k in ('step_head', 'step_tf', 'tg_head', 'tg_tf')}
    for _ in range(args.repeats):
        times['step_head'].append(step(in_head))
        times['step_tf'].append(step(from_transform))
        times['tg_head'].append(targets(in_head))
        times['tg_tf'].append(targets(from_transform))
    m = {k: statistics.median(v) for k, v in times.items()}
    print(f'head loss+backward per step: targets built in the head '
          f'{m["step_head"]:.3f} s, from the transform {m["step_tf"]:.3f} s '
          f'(ratio {m["step_tf"] / m["step_head"]:.3f})')
    print(f'of which target building: in the head {m["tg_head"] * 1e3:.1f} ms, '
          f'from the transform {m["tg_tf"] * 1e3:.1f} ms')


if __name__ == '__main__':
    main()
