"""Check a configured dataset before training on it (tools/check_dataset.py).

Every sample goes through the configured pipeline, one transform at a time:

* the loading steps (``Load*``), after which the annotations are compared
  with their image (size, label range) and counted per class;
* the remaining steps (augmentation, packing, ``BuildMaskTargets``), after
  which the segments left are counted: the difference is what the training
  crop emptied. ``show_dir`` gets an overlay of what the model will see.

Problems are :class:`~m2f_mm.utils.errors.DataError` s grouped by their
``kind``; those in :data:`~m2f_mm.datasets.dataset_report.WARNING_KINDS` do
not stop training, all others do. What a check reports (the counts, the
problems, the text and the overlays) is in :mod:`.dataset_report`.
"""
import os.path as osp
import random
import sys
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from m2f_mm.models.utils.targets import ClassCounts, mask_targets
from m2f_mm.utils.errors import DataError, data_error, image_of, one_line
from .class_counts import apply_class_counts
# format_report is read from here too (tools/check_dataset.py)
from .dataset_report import (CheckReport, format_report,  # noqa: F401
                             palette_of, write_overlay)
from .pipeline_errors import pipeline_error

def _transform_cfgs(pipeline) -> List[dict]:
    return [t for t in pipeline if isinstance(t, dict)]


def ignore_index_of(dataset_cfg: dict) -> int:
    """The void label: ``BuildMaskTargets``'s ``ignore_index`` in the
    pipeline, else the dataset's, else 255."""
    for t in _transform_cfgs(dataset_cfg.get('pipeline', [])):
        if str(t.get('type', '')).endswith('BuildMaskTargets'):
            return int(t.get('ignore_index', 255))
    return int(dataset_cfg.get('ignore_index', 255))


def build_dataset_for_check(dataset_cfg: dict, report: CheckReport):
    """Build and load the dataset, collecting (not raising) the problems our
    COCO datasets find in their annotation files. None when it cannot load
    at all (the reason is in ``report``)."""
    from mmengine.registry import DATASETS
    cfg = dict(dataset_cfg, lazy_init=True)
    try:
        dataset = DATASETS.build(cfg)
        if hasattr(dataset, 'collect_problems'):
            dataset.collect_problems = report.problems
        dataset.full_init()
    except Exception as e:  # the dataset cannot load: nothing else to check
        kind = 'missing file' if isinstance(e, FileNotFoundError) else getattr(
            e, 'kind', 'dataset error')
        msg = one_line(e)
        if not isinstance(e, DataError):
            msg = f'{type(e).__name__}: {msg}'
        report.problems.append(DataError(msg, kind=kind))
        return None
    return dataset


def _loaded_segments(results: dict, num_things: int, num_classes: int
                     ) -> List[Tuple[int, int]]:
    """(label, pixels) of each segment of a freshly loaded sample: thing
    instances (``gt_masks``; crowd regions left out) then the classes of
    ``gt_seg_map`` that are not things (all of them in semantic data)."""
    segments = []
    masks, labels = results.get('gt_masks'), results.get('gt_bboxes_labels')
    if masks is not None and labels is not None:
        ignore = results.get('gt_ignore_flags', np.zeros(len(labels), bool))
        areas = np.asarray(masks.masks).reshape(len(masks), -1).sum(1) \
            if len(masks) else np.zeros(0)
        segments += [(int(lab), int(a)) for lab, a, ig in zip(labels, areas, ignore)
                     if not ig]
    sem = results.get('gt_seg_map')
    if sem is not None:  # void pixels (and things, counted above) left out
        values = np.asarray(sem, np.int64).ravel()
        first = num_things if masks is not None else 0
        counts = np.bincount(values[(values >= first) & (values < num_classes)],
                             minlength=num_classes)
        segments += [(int(k), int(counts[k])) for k in np.nonzero(counts)[0]]
    return segments


def _final_segments(results: dict, counts: ClassCounts, ignore_index: int
                    ) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """(labels, masks) the model trains on: ``gt_segments`` from
    BuildMaskTargets, else what the head derives from the packed sample
    (the same rule, :func:`mask_targets`)."""
    sample = results.get('data_samples') if isinstance(results, dict) else None
    if sample is None:
        return None
    if 'gt_segments' in sample:
        return sample.gt_segments.labels, sample.gt_segments.masks
    things = masks = sem = None
    if 'gt_instances' in sample and 'masks' in sample.gt_instances:
        things, masks = sample.gt_instances.labels, sample.gt_instances.masks
        if not isinstance(masks, torch.Tensor):
            masks = torch.from_numpy(np.asarray(masks.masks, bool))
        sem = sample.gt_sem_seg.sem_seg[0] if 'gt_sem_seg' in sample else None
    elif 'gt_sem_seg' in sample:
        sem = sample.gt_sem_seg.data[0]
    else:
        return None
    return mask_targets(things, masks, sem, counts, ignore_index)


def _check_loaded(results: dict, report: CheckReport, ignore_index: int
                  ) -> List[DataError]:
    """Size and label-range problems of a freshly loaded sample."""
    num_classes = len(report.classes)
    image = image_of(results)
    seg_file = results.get('seg_map_path') or results.get('img_path')
    ori = results.get('ori_shape') or np.shape(results.get('img'))[:2]
    ori = tuple(int(s) for s in ori[:2])
    errors = []
    sem = results.get('gt_seg_map')
    if sem is not None and tuple(sem.shape[-2:]) != ori:
        errors.append(data_error(seg_file, f'the label map is {sem.shape[0]}x'
                                 f'{sem.shape[1]} but its image is {ori[0]}x{ori[1]}',
                                 image, 'gt_seg_map', kind='size mismatch'))
    masks = results.get('gt_masks')
    if masks is not None and len(masks) and tuple(masks.masks.shape[-2:]) != ori:
        h, w = masks.masks.shape[-2:]
        errors.append(data_error(seg_file, f'the masks are {h}x{w} but their '
                                 f'image is {ori[0]}x{ori[1]}', image, 'gt_masks',
                                 kind='size mismatch'))
    if sem is not None:
        values = np.unique(sem)
        bad = values[((values < 0) | (values >= num_classes)) & (values != ignore_index)]
        if len(bad):
            errors.append(data_error(
                seg_file, f'labels {bad.tolist()[:10]} are outside [0, {num_classes}) '
                f'and not the ignore index {ignore_index} ({num_classes} classes '
                'in the metainfo; reduce_zero_label?)', image, 'gt_seg_map',
                kind='label out of range'))
    labels = results.get('gt_bboxes_labels')
    if labels is not None and len(labels) and (
            labels.min() < 0 or labels.max() >= num_classes):
        errors.append(data_error(seg_file, f'instance labels {sorted(set(labels.tolist()))} '
                                 f'are outside [0, {num_classes})', image,
                                 'gt_bboxes_labels', kind='label out of range'))
    return errors


def _run(transforms: Sequence, results: dict):
    """Run ``transforms``; (results or None, DataError or None)."""
    for t in transforms:
        info = {k: results.get(k) for k in ('img_path', 'img_id', 'seg_map_path')}
        try:
            results = t(results)
        except Exception as e:
            return None, pipeline_error(info, t, e)
        if results is None:
            return None, None
    return results, None


def check_sample(dataset, idx: int, report: CheckReport, ignore_index: int,
                 show_dir: Optional[str] = None) -> None:
    """Check sample ``idx``; its problems and counts go into ``report``."""
    info = dataset.get_data_info(idx)
    image = image_of(info)
    for key, what in (('img_path', 'image'), ('seg_map_path', 'label map')):
        path = info.get(key)
        if path and '://' not in str(path) and not osp.isfile(path):
            report.problems.append(data_error(
                path, f'the {what} does not exist', image, key, kind='missing file'))
            return
    transforms = list(dataset.pipeline.transforms)
    loads = [i for i, t in enumerate(transforms) if type(t).__name__.startswith('Load')]
    split = loads[-1] + 1 if loads else 0
    results, error = _run(transforms[:split], info)
    if error is not None:
        report.problems.append(error)
        return
    if results is None:
        report.problems.append(data_error(info.get('img_path'), 'a loading step '
                                          'returned nothing', image,
                                          kind='dropped by pipeline'))
        return
    errors = _check_loaded(results, report, ignore_index)
    report.problems += errors
    if errors:
        return
    num_classes = len(report.classes)
    segments = _loaded_segments(results, report.num_things, num_classes)
    where = results.get('seg_map_path') or results.get('img_path')
    for label, pixels in segments:
        if pixels == 0:
            report.problems.append(data_error(
                where, f'a segment of class {label} ({report.classes[label]}) has '
                'no pixel', image, kind='empty segment'))
    segments = [(lab, pix) for lab, pix in segments if pix > 0]
    if not segments:
        report.problems.append(data_error(where, 'no segment to train on', image,
                                          kind='no segment'))
    for label in {lab for lab, _ in segments}:
        report.stats[label].images += 1
    for label, pixels in segments:
        report.stats[label].segments += 1
        report.stats[label].pixels += pixels
    report.segments_loaded += len(segments)

    results, error = _run(transforms[split:], results)
    if error is not None:
        report.problems.append(error)
        return
    if results is None:
        report.problems.append(data_error(info.get('img_path'), 'the pipeline '
                                          'dropped the sample', image,
                                          kind='dropped by pipeline'))
        return
    counts = ClassCounts(report.num_things, num_classes - report.num_things)
    final = _final_segments(results, counts, ignore_index)
    if final is not None:
        emptied = max(0, len(segments) - len(final[0]))
        report.segments_emptied += emptied
        report.images_with_emptied += int(emptied > 0)
        if show_dir is not None:
            name = osp.splitext(osp.basename(info.get('img_path') or 'sample'))[0]
            write_overlay(results['inputs'], final, report.classes, report.palette,
                          osp.join(show_dir, f'{idx:06d}_{name}.png'))


def check_dataset(dataset_cfg: dict, show_dir: Optional[str] = None,
                  progress: bool = True, seed: int = 0,
                  model_counts: Optional[Tuple[ClassCounts, str]] = None
                  ) -> CheckReport:
    """Load every sample of ``dataset_cfg`` (a dataset config dict, built in
    the current default scope) through its pipeline and report the problems
    and per-class counts. The random augmentations run with ``seed``.
    ``model_counts``: (the head's class counts, its name), which the
    metainfo must agree with and ``BuildMaskTargets`` takes."""
    report = CheckReport(dataset=str(dataset_cfg.get('type')))
    dataset = build_dataset_for_check(dataset_cfg, report)
    if dataset is None:
        return report
    if model_counts is not None:
        try:
            apply_class_counts(dataset, *model_counts)
        except DataError as e:  # nothing trains on this dataset
            report.problems.append(e)
            return report
    meta = dataset.metainfo
    report.source = str(getattr(dataset, 'ann_file', '') or
                        getattr(dataset, 'data_root', '') or '')
    report.classes = tuple(meta.get('classes', ()))
    # panoptic: its things; COCO instance data: all things; semantic: none
    things = meta.get('thing_classes')
    report.num_things = len(things) if things is not None else (
        len(report.classes) if hasattr(dataset, 'cat2label') else 0)
    report.palette = palette_of(report, meta)
    report.num_samples = len(dataset)
    report.num_skipped = getattr(dataset, 'num_skipped', 0)
    ignore_index = ignore_index_of(dataset_cfg)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    bar = None
    if progress and len(dataset):
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(dataset), file=sys.stderr)
    for idx in range(len(dataset)):
        check_sample(dataset, idx, report, ignore_index, show_dir)
        if bar is not None:
            bar.update()
    if bar is not None:
        sys.stderr.write('\n')
    if report.num_samples and not report.errors:
        for label, name in enumerate(report.classes):
            if report.stats[label].segments == 0:
                report.problems.append(data_error(
                    report.source, 'no segment in the whole split',
                    field=f'class {label} ({name})', kind='class without segments'))
    return report
