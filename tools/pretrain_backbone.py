"""Pretrain a config's backbone on the toy things' shapes, and report how well it names them.

The paper's backbones start ImageNet-pretrained; the quickstart has no
ImageNet, so it gives its ResNet-18 the same kind of start on the toy data
itself: each thing's ground-truth mask pools one backbone level (average or
max), one linear layer classifies the pooled vector (circle / square /
triangle), and backbone + linear layer train with AdamW (linear warm-up over
50 steps, then constant lr, no gradient clipping) on batches of whole train
images with random flips. Only the train split's images and annotations are
used. Train accuracy is printed every 100 steps; val accuracy and the
confusion matrix at the end. ``--out`` saves the backbone's weights as a
checkpoint with ``backbone.``-prefixed keys, which a config loads with
``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``
(configs/quickstart/mask2former_r18-toyshapes_toy-panoptic.py).

Also a diagnostic: the val accuracy is the baseline for the class accuracy
``tools/analyze_things.py`` measures inside a trained Mask2Former.

    python tools/pretrain_backbone.py [--config CFG] [--data data/toy]
        [--steps 800] [--batch 8] [--lr 1e-3] [--level 1] [--pool avg|max]
        [--seed 0] [--out work_dirs/quickstart/backbone_toyshapes.pth]
"""
import argparse
import json
import logging
import os.path as osp
import sys
import time
from typing import Dict, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from analyze_things import mask_pool
from draw_overlays import gt_segments

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = 'configs/quickstart/mask2former_r18_toy-panoptic.py'


def load_things(data: str, split: str, num_things: int
                ) -> Tuple[torch.Tensor, List[torch.Tensor], List[torch.Tensor]]:
    """Images (N, 3, H, W) float RGB 0-255, and per image the (n, H, W) bool
    masks and (n,) labels of its things (the first ``num_things`` categories)."""
    ann_file = osp.join(data, 'annotations', f'panoptic_{split}.json')
    if not osp.isfile(ann_file):
        raise FileNotFoundError(f'pretrain_backbone: no {ann_file}; generate the toy '
                                'data with tools/make_toy_dataset.py')
    with open(ann_file) as f:
        pan_json = json.load(f)
    cat_to_label = {c['id']: i for i, c in enumerate(pan_json['categories'])}
    segments = gt_segments(pan_json, osp.join(data, 'annotations', f'panoptic_{split}'),
                           cat_to_label)
    images, masks, labels = [], [], []
    for file_name, segs in segments.values():
        img = np.asarray(Image.open(osp.join(data, split, file_name)).convert('RGB'))
        things = [(m, label) for m, label in segs if label < num_things]
        images.append(torch.from_numpy(img.copy()).permute(2, 0, 1).float())
        masks.append(torch.from_numpy(np.stack([m for m, _ in things]) if things
                                      else np.zeros((0,) + img.shape[:2], bool)))
        labels.append(torch.tensor([label for _, label in things], dtype=torch.long))
    return torch.stack(images), masks, labels


def pool(feat: torch.Tensor, masks: torch.Tensor, mode: str) -> torch.Tensor:
    """(C, h, w) features pooled over each of (n, H, W) masks: (n, C)."""
    if mode == 'avg':
        return mask_pool(feat, masks)
    cover = F.interpolate(masks[None].float(), size=feat.shape[-2:], mode='area')[0]
    # max over the cells the thing covers at least a quarter of
    outside = (cover < 0.25).float()[:, None] * -1e4
    return (feat[None] + outside).flatten(2).max(-1)[0]


def save_backbone(backbone: torch.nn.Module, path: str, meta: Dict) -> None:
    """Save ``backbone``'s weights under ``backbone.``-prefixed keys, whole or
    not at all (:func:`m2f_mm.utils.fileio.atomic_write`)."""
    from m2f_mm.utils.fileio import atomic_write
    state = {f'backbone.{k}': v.cpu() for k, v in backbone.state_dict().items()}
    atomic_write(path, lambda f: torch.save({'state_dict': state, 'meta': meta}, f))


def main(argv=None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=CONFIG,
                        help='config whose model.backbone and data_preprocessor '
                        'mean/std are used')
    parser.add_argument('--data', default='data/toy')
    parser.add_argument('--steps', type=int, default=800)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--level', type=int, default=1,
                        help='backbone output pooled (0: the finest)')
    parser.add_argument('--pool', choices=('avg', 'max'), default='avg')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--device', default=None,
                        help='cuda or cpu (default: cuda when a GPU is there); '
                        'on CUDA the result is not bit-for-bit repeatable')
    parser.add_argument('--out', default=None,
                        help='save the trained backbone here (keys prefixed '
                        '"backbone.")')
    a = parser.parse_args(argv)
    if a.steps < 1 or a.batch < 1:
        parser.error('--steps and --batch must be at least 1')
    if a.threads:
        torch.set_num_threads(a.threads)

    sys.path.insert(0, REPO)
    import m2f_mm  # noqa: F401  (registers the project's modules)
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(a.config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    num_things = cfg.model.panoptic_head.num_things_classes
    pre = cfg.model.data_preprocessor
    mean = torch.tensor(pre.mean)[:, None, None]
    std = torch.tensor(pre.std)[:, None, None]

    x_train, m_train, y_train = load_things(a.data, 'train', num_things)
    x_val, m_val, y_val = load_things(a.data, 'val', num_things)
    for split, labels in (('train', y_train), ('val', y_val)):
        if not sum(len(y) for y in labels):
            raise ValueError(f'pretrain_backbone: the {split} split of {a.data} has no things')
    # PIL loads RGB, the order of the preprocessor's mean/std (bgr_to_rgb)
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    device = torch.device(a.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    x_train, x_val = x_train.to(device), x_val.to(device)
    m_train, m_val = [m.to(device) for m in m_train], [m.to(device) for m in m_val]
    y_train, y_val = [y.to(device) for y in y_train], [y.to(device) for y in y_val]

    torch.manual_seed(a.seed)
    backbone = MODELS.build(cfg.model.backbone)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # not a line per parameter
    try:
        backbone.init_weights()
    finally:
        logger.setLevel(level)
    backbone.to(device)
    with torch.no_grad():
        feats = backbone(x_train[:1])
    if not 0 <= a.level < len(feats):
        parser.error(f'--level must be in [0, {len(feats) - 1}], got {a.level}')
    classifier = torch.nn.Linear(feats[a.level].shape[1], num_things).to(device)
    params = list(backbone.parameters()) + list(classifier.parameters())
    optimizer = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.05)

    def logits_of(x, masks):
        feat = backbone(x)[a.level]
        pooled = [pool(feat[i], m, a.pool) for i, m in enumerate(masks) if len(m)]
        return classifier(torch.cat(pooled)) if pooled else None

    gen = torch.Generator().manual_seed(a.seed)
    per_step, t0, log = [], time.time(), []  # per step: (right, things)
    backbone.train()
    for step in range(1, a.steps + 1):
        idx = torch.randint(len(x_train), (a.batch,), generator=gen).tolist()
        flip = (torch.rand(a.batch, generator=gen) < 0.5).tolist()
        x = torch.stack([x_train[i].flip(-1) if f else x_train[i]
                         for i, f in zip(idx, flip)])
        masks = [m_train[i].flip(-1) if f else m_train[i] for i, f in zip(idx, flip)]
        y = torch.cat([y_train[i] for i in idx])
        for group in optimizer.param_groups:
            group['lr'] = a.lr * min(1.0, step / 50)
        logits = logits_of(x, masks)
        if logits is None:
            continue
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        per_step.append((int((logits.argmax(1) == y).sum()), len(y)))
        if step % 100 == 0 or step == a.steps:
            right, total = np.asarray(per_step[-100:]).sum(0)  # last 100 steps
            acc = float(right / total)
            log.append((step, acc))
            print(f'step {step}/{a.steps}  train accuracy (last 100 steps) {100 * acc:.1f} %  '
                  f'{time.time() - t0:.0f} s', flush=True)

    backbone.eval()
    with torch.no_grad():
        preds = [logits_of(x_val[i:i + 1], m_val[i:i + 1]) for i in range(len(x_val))]
    pred = torch.cat([p.argmax(1) for p in preds if p is not None])
    true = torch.cat(y_val)
    confusion = torch.zeros(num_things, num_things, dtype=torch.long)
    for t, p in zip(true.tolist(), pred.tolist()):
        confusion[t, p] += 1
    val_acc = float((pred == true).float().mean())
    names = cfg.get('thing_classes') or [str(i) for i in range(num_things)]
    print(f'val: {len(true)} things, {100 * val_acc:.1f} % named right')
    print('true \\ predicted ' + ' '.join(f'{n:>9}' for n in names))
    for n, row in zip(names, confusion.tolist()):
        print(f'{n:16} ' + ' '.join(f'{v:9d}' for v in row))
    if a.out:
        save_backbone(backbone, a.out, dict(
            config=a.config, data=a.data, steps=a.steps, batch=a.batch, lr=a.lr,
            level=a.level, pool=a.pool, seed=a.seed, val_accuracy=val_acc))
        print(f'backbone saved to {a.out}')
    return dict(train_log=log, val_accuracy=val_acc, confusion=confusion.tolist())


if __name__ == '__main__':
    main()
