"""What a dataset check (:mod:`.dataset_check`) reports: the per-class
counts and the problems (:class:`CheckReport`), as text (:func:`format_report`)
and as overlays of what the model will see (:func:`write_overlay`)."""
import os
import os.path as osp
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from m2f_mm.utils.errors import DataError, one_line

#: problems that training survives (the rest stop it)
WARNING_KINDS = ('no segment', 'empty segment', 'class without segments',
                 'dropped by pipeline')


@dataclass
class ClassStats:
    segments: int = 0
    images: int = 0
    pixels: int = 0


@dataclass
class CheckReport:
    """What :func:`check_dataset` found."""
    dataset: str = ''
    source: str = ''  # the annotation file or data root
    classes: Tuple[str, ...] = ()
    num_things: int = 0
    palette: Optional[np.ndarray] = None  # (K, 3) RGB
    num_samples: int = 0
    num_skipped: int = 0  # images the dataset left out for their problems
    problems: List[DataError] = field(default_factory=list)
    stats: Dict[int, ClassStats] = field(default_factory=lambda: defaultdict(ClassStats))
    segments_loaded: int = 0
    segments_emptied: int = 0
    images_with_emptied: int = 0

    @property
    def errors(self) -> List[DataError]:
        return [p for p in self.problems if p.kind not in WARNING_KINDS]

    @property
    def warnings(self) -> List[DataError]:
        return [p for p in self.problems if p.kind in WARNING_KINDS]

    @property
    def stops_training(self) -> bool:
        return bool(self.errors)


def palette_of(report: CheckReport, metainfo: dict) -> np.ndarray:
    """The metainfo's palette as (K, 3) float RGB; random colours when it
    has none or too few."""
    palette = metainfo.get('palette')
    n = len(report.classes)
    if palette is None or len(palette) < n:
        rng = np.random.default_rng(0)
        palette = rng.integers(40, 255, (n, 3))
    return np.asarray(palette, np.float32)[:n]


def write_overlay(img, final, classes: Sequence[str], palette: np.ndarray,
                  path: str) -> None:
    """Write the packed image ``img`` (C, H, W; BGR as loaded) with the
    final targets (labels, masks) painted over it: one colour per class, a
    darker outline and the class name per segment."""
    import cv2
    img = img.permute(1, 2, 0).numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
    img = np.ascontiguousarray(img[..., :3]).astype(np.float32)  # BGR as loaded
    colors = palette[:, ::-1]  # RGB -> BGR
    labels, masks = final
    masks = masks.numpy().astype(bool)
    h, w = img.shape[:2]
    out = img.copy()
    for label, mask in zip(labels.tolist(), masks):
        mask = mask[:h, :w]
        out[mask] = 0.45 * img[mask] + 0.55 * colors[label]
    out = out.astype(np.uint8)
    for label, mask in zip(labels.tolist(), masks):
        m = mask[:h, :w].astype(np.uint8)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, tuple(int(c) * 0.5 for c in colors[label]), 1)
        ys, xs = np.nonzero(m)
        if len(ys):
            cv2.putText(out, classes[label], (int(xs.mean()), int(ys.mean())),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 255), 1, cv2.LINE_AA)
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    cv2.imwrite(path, out)


def format_report(report: CheckReport, max_listed: int = 20) -> str:
    """The report as text: problems by kind (at most ``max_listed`` lines
    each), the crop count and the per-class histogram."""
    skipped = (f' (+ {report.num_skipped} left out for the problems below)'
               if report.num_skipped else '')
    lines = [f'{report.num_samples} samples{skipped}, {len(report.classes)} classes '
             f'({report.num_things} things) in {report.dataset}']

    def listing(title: str, problems: List[DataError]) -> None:
        if not problems:
            return
        lines.append(f'{title} ({len(problems)}):')
        by_kind: Dict[str, List[DataError]] = defaultdict(list)
        for p in problems:
            by_kind[p.kind].append(p)
        for kind, items in by_kind.items():
            lines.append(f'  {kind} ({len(items)}):')
            lines.extend(f'    {one_line(p)}' for p in items[:max_listed])
            if len(items) > max_listed:
                lines.append(f'    ... and {len(items) - max_listed} more')

    listing('problems that stop training', report.errors)
    listing('warnings', report.warnings)
    if report.segments_loaded:
        lines.append(f'segments emptied by the pipeline (crop): '
                     f'{report.segments_emptied} of {report.segments_loaded} '
                     f'(in {report.images_with_emptied} images)')
    if report.classes:
        total = sum(s.pixels for s in report.stats.values()) or 1
        width = max(len(c) for c in report.classes)
        lines.append('per class, as loaded (before augmentation):')
        lines.append(f'  {"label":>5}  {"class":<{width}}  {"kind":<5}  '
                     f'{"segments":>8}  {"images":>6}  {"pixels":>10}  share')
        for label, name in enumerate(report.classes):
            s = report.stats.get(label, ClassStats())
            kind = 'thing' if label < report.num_things else 'stuff'
            share = s.pixels / total
            lines.append(f'  {label:>5}  {name:<{width}}  {kind:<5}  {s.segments:>8}  '
                         f'{s.images:>6}  {s.pixels:>10}  {share:6.1%} '
                         f'{"#" * round(share * 40)}')
    lines.append('result: ' + ('problems found that stop training' if report.errors
                               else 'no problem that stops training'))
    return '\n'.join(lines)
