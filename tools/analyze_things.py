"""Do a model's things fail by their masks or by their classes?

For every ground-truth thing of a split, the query that the model would
report for it is taken as its match: the one with the highest mask IoU (at
1/4 scale) times class score (its highest probability of a real class, as in
instance inference); the tool prints

* the mean and median mask IoU of those queries (are the things segmented?),
* the confusion matrix of ground-truth class × the matched query's predicted
  class (thing, stuff or "no object"), and the accuracy (are they named?),
* with ``--probe``: how well a linear classifier separates the thing classes
  from features average-pooled inside each ground-truth mask, for every
  backbone and pixel-decoder level (fit on 70 % of the things, accuracy on
  the other 30 %). Near chance (1 / number of thing classes) means the
  features do not (yet) encode what tells the classes apart.

MMDetection-hosted models (panoptic or instance configs) only::

    python tools/analyze_things.py CONFIG CKPT [--split val|train]
        [--max-images N] [--probe] [--cfg-options KEY=VALUE ...]
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List, Sequence

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def parse_args(argv=None):
    from m2f_mm.utils.cli import add_model_options
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--split', choices=['val', 'train'], default='val',
                        help='the config\'s val dataset, or its train '
                        'dataset read with the test pipeline')
    parser.add_argument('--max-images', type=int, default=None)
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--probe', action='store_true',
                        help='also fit linear probes on mask-pooled features')
    parser.add_argument('--seed', type=int, default=0, help='probe split and init')
    add_model_options(parser)
    return parser.parse_args(argv)


def build_dataset(cfg, split: str):
    from mmdet.registry import DATASETS
    dataset = cfg.val_dataloader.dataset.copy()
    if split == 'train':
        train = cfg.train_dataloader.dataset
        for key in ('ann_file', 'data_prefix', 'data_root'):
            if key in train:
                dataset[key] = train[key]
    return DATASETS.build(dataset)


def mask_pool(features, masks):
    """(C, h, w) features averaged inside each of (N, H, W) masks → (N, C);
    masks are area-resized, so small things still count."""
    import torch.nn.functional as F
    weights = F.interpolate(masks[None].float(), size=features.shape[-2:],
                            mode='area')[0]
    weights = weights / weights.flatten(1).sum(1).clamp(min=1e-6)[:, None, None]
    return (weights.flatten(1) @ features.flatten(1).t())


def best_matches(mask_logits, cls_logits, gt_masks):
    """For each ground-truth mask: the query with the highest mask IoU ×
    class score (highest probability of a real class); its IoU and its
    predicted class (no object included).

    Args:
        mask_logits: (Q, h, w) final-set mask logits of one image.
        cls_logits: (Q, K + 1) its class logits.
        gt_masks: (N, H, W) ground-truth thing masks.
    Returns:
        (N,) IoUs and (N,) predicted class indices (K = no object).
    """
    import torch
    import torch.nn.functional as F
    if len(gt_masks) == 0:
        return torch.zeros(0), torch.zeros(0, dtype=torch.long)
    gt = F.interpolate(gt_masks[None].float(), size=mask_logits.shape[-2:],
                       mode='bilinear', align_corners=False)[0] >= 0.5
    pred = mask_logits >= 0  # sigmoid ≥ 0.5
    inter = (gt[:, None] & pred[None]).flatten(2).sum(-1).float()
    union = (gt[:, None] | pred[None]).flatten(2).sum(-1).float()
    iou = inter / union.clamp(min=1)
    score = cls_logits.softmax(-1)[:, :-1].max(-1).values
    query = (iou * score).argmax(1)
    return iou.gather(1, query[:, None])[:, 0], cls_logits.argmax(-1)[query]


def linear_probe(features, labels, num_classes: int, seed: int = 0) -> float:
    """Held-out accuracy (30 %) of a linear softmax classifier."""
    import torch
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=g)
    n_fit = int(0.7 * len(labels))
    fit, held = order[:n_fit], order[n_fit:]
    if n_fit == 0 or len(held) == 0:
        return float('nan')
    mean, std = features[fit].mean(0), features[fit].std(0) + 1e-5
    x = (features - mean) / std
    torch.manual_seed(seed)
    clf = torch.nn.Linear(x.shape[1], num_classes)
    opt = torch.optim.Adam(clf.parameters(), 1e-2, weight_decay=1e-3)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(clf(x[fit]), labels[fit]).backward()
        opt.step()
    with torch.no_grad():
        return (clf(x[held]).argmax(1) == labels[held]).float().mean().item()


def format_report(classes: Sequence[str], num_things: int, ious, preds, labels,
                  probes: Dict[str, float]) -> str:
    k = len(classes)
    columns = list(classes) + ['no object']
    width = max(9, *(len(c) for c in columns))
    lines = [f'{len(labels)} ground-truth things; mask IoU of their queries: '
             f'mean {ious.mean().item():.3f}, median {ious.median().item():.3f}']
    correct = (preds == labels).float().mean().item()
    lines.append(f'class of their queries: {100 * correct:.1f} % '
                 f'correct (chance among the thing classes '
                 f'{100 / num_things:.1f} %)')
    lines.append('')
    lines.append('ground truth \\ predicted'.ljust(width + 2) +
                 ''.join(c.rjust(width + 1) for c in columns))
    for t in range(num_things):
        row = [int(((labels == t) & (preds == p)).sum()) for p in range(k + 1)]
        lines.append(classes[t].ljust(width + 2) +
                     ''.join(str(v).rjust(width + 1) for v in row))
    if probes:
        lines.append('')
        lines.append('linear probe on mask-pooled features (held-out accuracy):')
        for name, acc in probes.items():
            lines.append(f'  {name:<22} {100 * acc:5.1f} %')
    return '\n'.join(lines)


def main(argv=None) -> str:
    args = parse_args(argv)
    import torch
    from mmengine.dataset import pseudo_collate

    from m2f_mm.deploy import build_model_from_config
    from m2f_mm.utils.runner import load_config, run_or_exit
    cfg = load_config(args.config, 'analyze_things.py', args.cfg_options)
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'analyze_things.py: checkpoint {args.checkpoint} '
                         'does not exist')
    # m2f_mm's checkpoint loader: one line for a file that is not this model's
    model, cfg = run_or_exit(lambda: build_model_from_config(cfg, args.checkpoint),
                             'analyze_things.py', args.debug)
    head = getattr(model, 'panoptic_head', None)
    if head is None:
        raise SystemExit('analyze_things.py: the config\'s model has no '
                         'panoptic_head (an MMDetection-hosted Mask2Former is '
                         'needed)')
    dataset = build_dataset(cfg, args.split)
    classes = list(dataset.metainfo['classes'])
    num_things = head.num_things_classes
    n = len(dataset) if args.max_images is None else min(len(dataset),
                                                          args.max_images)
    ious, preds, labels = [], [], []
    pooled: Dict[str, List] = {}
    for start in range(0, n, args.batch_size):
        batch = pseudo_collate([dataset[i] for i in
                                range(start, min(n, start + args.batch_size))])
        data = model.data_preprocessor(batch, False)
        with torch.no_grad():
            feats = model.extract_feat(data['inputs'])
            mask_feat, multi_scale = head.pixel_decoder(feats)
            all_cls, all_masks = head.transformer_decoder(mask_feat, multi_scale)
        if args.probe:
            levels = {f'backbone level {i}': f for i, f in enumerate(feats)}
            levels.update({f'pixel decoder level {i}': f
                           for i, f in enumerate(multi_scale)})
            levels['mask features'] = mask_feat
        for b, sample in enumerate(data['data_samples']):
            inst = sample.gt_instances
            gt = inst.masks.to_tensor(torch.float32, 'cpu') if len(inst) else \
                torch.zeros((0,) + tuple(data['inputs'].shape[-2:]))
            iou, pred = best_matches(all_masks[-1][b], all_cls[-1][b], gt)
            ious.append(iou)
            preds.append(pred)
            labels.append(inst.labels.long())
            if args.probe and len(gt):
                for name, f in levels.items():
                    pooled.setdefault(name, []).append(mask_pool(f[b], gt))
    ious, preds, labels = torch.cat(ious), torch.cat(preds), torch.cat(labels)
    if len(labels) == 0:
        raise SystemExit(f'analyze_things.py: the {args.split} split has no '
                         f'ground-truth things in its first {n} images')
    probes = {name: linear_probe(torch.cat(v), labels, num_things, args.seed)
              for name, v in pooled.items()}
    report = format_report(classes, num_things, ious, preds, labels, probes)
    print(report)
    return report


if __name__ == '__main__':
    main()
