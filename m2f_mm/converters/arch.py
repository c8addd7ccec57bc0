"""The architecture a converted checkpoint needs, and the config that builds it.

A converter reads widths and depths from the weights (and, for Hugging
Face, from ``config.json``) into an :class:`Arch`; :func:`build_config`
takes one of this repository's configs for the dataset (its data pipeline,
evaluator and runtime) and puts that architecture into it, so that the
written config builds a model the converted weights load into with
``strict=True``.
"""
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from .loading import ConversionError

# dataset -> our config it starts from, task, classes, things; 'interleaved':
# the original numbers its classes as the dataset does, things not first
# (m2f_mm/datasets/categories.py); the converter puts the things first
DATASETS: Dict[str, dict] = {
    'coco-panoptic': dict(base='mask2former_r50_coco-panoptic.py', task='panoptic',
                          classes=133, things=80),
    'coco-instance': dict(base='mask2former_r50_coco-instance.py', task='instance',
                          classes=80, things=80),
    'ade20k-semantic': dict(base='mask2former_r50_ade20k-semantic.py', task='semantic',
                            classes=150, things=0),
    'cityscapes-semantic': dict(base='mask2former_r50_cityscapes-semantic.py',
                                task='semantic', classes=19, things=0),
    'cityscapes-panoptic': dict(base='mask2former_r50_cityscapes-panoptic.py',
                                task='panoptic', classes=19, things=8, interleaved=True),
    'cityscapes-instance': dict(base='mask2former_r50_cityscapes-instance.py',
                                task='instance', classes=8, things=8),
    'ade20k-panoptic': dict(base='mask2former_r50_ade20k-panoptic.py', task='panoptic',
                            classes=150, things=100, interleaved=True),
    'ade20k-instance': dict(base='mask2former_r50_ade20k-instance.py', task='instance',
                            classes=100, things=100),
    'mapillary-panoptic': dict(base='mask2former_r50_mapillary-panoptic.py',
                               task='panoptic', classes=65, things=37, interleaved=True),
    'mapillary-semantic': dict(base='mask2former_r50_mapillary-semantic.py',
                               task='semantic', classes=65, things=0),
}
# the official checkpoints' class counts name their dataset; where a semantic
# and a panoptic model share a count (150, 19, 65) the semantic one is the
# default and --dataset names the other
_BY_CLASSES = {133: 'coco-panoptic', 80: 'coco-instance', 150: 'ade20k-semantic',
               19: 'cityscapes-semantic', 8: 'cityscapes-instance',
               100: 'ade20k-instance', 65: 'mapillary-semantic'}


@dataclass
class Arch:
    """What the config must say for the converted weights to fit."""
    backbone: dict  # an MMDet/MMSeg backbone config
    in_channels: List[int]  # backbone levels, finest first
    feat_channels: int
    mask_channels: int
    num_queries: int
    num_classes: int
    enc_layers: int
    enc_heads: int
    enc_points: int
    enc_ffn: int
    enc_levels: int
    dec_layers: int
    dec_heads: int
    dec_ffn: int
    enforce_input_project: bool
    class_weight: Optional[List[float]]
    mean: List[float]
    std: List[float]
    bgr_to_rgb: bool  # True: the weights expect RGB (images load as BGR)
    class_names: Optional[List[str]] = None
    num_things: Optional[int] = None  # when the source says it
    extra: dict = field(default_factory=dict)


def resolve_dataset(arch: Arch, dataset: Optional[str], where: str) -> str:
    if dataset is None:
        dataset = _BY_CLASSES.get(arch.num_classes)
        if dataset is None:
            raise ConversionError(
                f'{where}: {arch.num_classes} classes match no known dataset; pass '
                f'--dataset ({", ".join(DATASETS)}) and, for panoptic, --num-things')
    if dataset not in DATASETS:
        raise ConversionError(f'{where}: unknown dataset {dataset!r}: expected one of '
                              f'{", ".join(DATASETS)}')
    return dataset


def head_prefix(dataset: str) -> str:
    return 'decode_head.' if DATASETS[dataset]['task'] == 'semantic' else 'panoptic_head.'


def configs_dir() -> str:
    """This repository's ``configs/`` (the package is installed from a clone)."""
    import m2f_mm
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
        m2f_mm.__file__))), 'configs')
    if not os.path.isdir(path):
        raise ConversionError(f'{path}: not found; --config-out needs m2f_mm installed '
                              'from a clone of the repository (pip install -e .)')
    return path


def _split(arch: Arch, dataset: str, num_things: Optional[int], where: str):
    spec = DATASETS[dataset]
    if spec['task'] == 'semantic':
        return 0, arch.num_classes
    if spec['task'] == 'instance':
        things = arch.num_classes
    elif num_things is not None:
        things = num_things
    elif arch.num_things is not None:
        things = arch.num_things
    elif arch.num_classes == spec['classes']:
        things = spec['things']
    else:
        raise ConversionError(f'{where}: {arch.num_classes} classes are not {dataset}\'s '
                              f'{spec["classes"]}; pass --num-things')
    if not 0 <= things <= arch.num_classes:
        raise ConversionError(f'{where}: --num-things {things} is outside '
                              f'[0, {arch.num_classes}]')
    return things, arch.num_classes - things


def build_config(arch: Arch, dataset: str, num_things: Optional[int] = None,
                 where: str = 'checkpoint'):
    """An mmengine ``Config``: our config for ``dataset`` with the model
    replaced by ``arch``."""
    from mmengine.config import Config, ConfigDict
    spec = DATASETS[dataset]
    cfg = Config.fromfile(os.path.join(configs_dir(), spec['base']))
    things, stuff = _split(arch, dataset, num_things, where)
    model = cfg.model
    model.backbone = ConfigDict(arch.backbone)
    model.data_preprocessor.update(mean=list(arch.mean), std=list(arch.std),
                                   bgr_to_rgb=arch.bgr_to_rgb)
    head = model.decode_head if spec['task'] == 'semantic' else model.panoptic_head
    head.update(
        in_channels=list(arch.in_channels),
        feat_channels=arch.feat_channels,
        mask_channels=arch.mask_channels,
        num_queries=arch.num_queries,
        num_transformer_feat_level=arch.enc_levels,
        enforce_decoder_input_project=arch.enforce_input_project,
        transformer_decoder=dict(num_layers=arch.dec_layers, num_heads=arch.dec_heads,
                                 ffn_dims=arch.dec_ffn))
    head.pixel_decoder.update(num_encoder_levels=arch.enc_levels,
                              num_layers=arch.enc_layers, num_heads=arch.enc_heads,
                              num_points=arch.enc_points, ffn_dims=arch.enc_ffn)
    weights = arch.class_weight
    if weights is not None and len(weights) != arch.num_classes + 1:
        raise ConversionError(f'{where}: {len(weights)} class weights for '
                              f'{arch.num_classes} classes + no-object')
    if weights is not None and all(w == 1.0 for w in weights[:-1]):
        head.no_object_weight = float(weights[-1])
        head.pop('class_weight', None)
    elif weights is not None:
        head.class_weight = [float(w) for w in weights]
    # the head is the one place for class counts; the fusion head and
    # BuildMaskTargets take them from it
    if spec['task'] == 'semantic':
        head.num_classes = arch.num_classes
    else:
        head.update(num_things_classes=things, num_stuff_classes=stuff)

    names = arch.class_names
    if arch.num_classes == spec['classes']:
        # the dataset's own classes: its metainfo names them for evaluation;
        # the checkpoint's names (HF id2label), when given, are recorded
        cfg.dataset_class_names = list(dataset_classes(dataset, cfg))
        names = names or cfg.dataset_class_names
    else:
        # not the dataset's classes: name them in the datasets' metainfo
        names = names or [f'class_{i}' for i in range(arch.num_classes)]
        meta = dict(classes=tuple(names))
        if spec['task'] == 'panoptic':
            meta.update(thing_classes=tuple(names[:things]),
                        stuff_classes=tuple(names[things:]))
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            if cfg.get(loader) is not None:
                cfg[loader].dataset.metainfo = meta
    cfg.class_names = list(names) if names else None
    cfg.num_things_classes, cfg.num_stuff_classes = things, stuff
    return cfg


def dataset_classes(dataset: str, cfg=None) -> Sequence[str]:
    """The class names of ``dataset``: its config's metainfo (things first
    where the dataset interleaves them), else MMDet's / MMSeg's dataset
    class's."""
    meta = cfg.train_dataloader.dataset.get('metainfo') if cfg is not None else None
    if meta and meta.get('classes'):
        return meta['classes']
    if dataset.startswith('coco'):
        from mmdet.datasets import CocoDataset, CocoPanopticDataset
        cls = CocoPanopticDataset if dataset == 'coco-panoptic' else CocoDataset
    else:
        from mmseg.datasets import ADE20KDataset, CityscapesDataset
        cls = ADE20KDataset if dataset.startswith('ade20k') else CityscapesDataset
    return cls.METAINFO['classes']


def config_text(cfg, header: Sequence[str]) -> str:
    lines = ''.join(f'# {h}\n' for h in header)
    return lines + cfg.pretty_text


def model_state_shapes(cfg) -> Dict[str, tuple]:
    """name → shape of the state dict of the model ``cfg`` builds: on the
    meta device (no memory, no initialisation) where the backbone allows it,
    else on the CPU (MMDet's Swin reads values while it is built)."""
    import torch
    from mmengine.registry import MODELS, init_default_scope
    import m2f_mm  # noqa: F401  (registers our parts)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    try:
        with torch.device('meta'):
            model = MODELS.build(cfg.model)
    except (RuntimeError, NotImplementedError):
        model = MODELS.build(cfg.model)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def finish_conversion(state, arch: Arch, *, source: str, src: str, dst: str,
                      config_out: Optional[str], dataset: Optional[str],
                      num_things: Optional[int],
                      thing_ids: Optional[Sequence[int]] = None) -> dict:
    """Put the things first where the source interleaves them
    (:func:`class_order`), check ``state`` (already in our layout, head
    under the dataset's prefix) against the model the config builds, then
    write the checkpoint and the config, each atomically. Returns a summary
    (``class_order``: for each label of ours, the source's class index)."""
    from .class_order import reorder_classes, reorder_list
    from .common import check_against, save_atomic, write_text_atomic
    order = class_order(arch, dataset, thing_ids, src)
    if order is not None:
        reorder_classes(state, order, head_prefix(dataset), src)
        arch.class_weight = reorder_list(arch.class_weight, order)
        arch.class_names = reorder_list(arch.class_names, order)
        if thing_ids is not None:
            num_things = len(set(thing_ids))
    cfg = build_config(arch, dataset, num_things, src)
    if order is not None:
        cfg.class_order = list(order)
    check_against(state, model_state_shapes(cfg), src)
    save_atomic(dict(state_dict=state,
                     meta=dict(converted_from=source, source_file=os.path.basename(src),
                               dataset=dataset, class_names=cfg.class_names,
                               class_order=order)), dst)
    if config_out:
        write_text_atomic(config_text(cfg, [
            f'Written by tools/convert_checkpoint.py {source} from {os.path.basename(src)}',
            f'for {dst} (dataset {dataset}); the model section is the checkpoint\'s',
            'architecture, the rest is configs/' + DATASETS[dataset]['base'] + '.']),
            config_out)
    return dict(num_keys=len(state), dataset=dataset, config=cfg, class_order=order)


def class_order(arch: Arch, dataset: str, thing_ids: Optional[Sequence[int]],
                where: str) -> Optional[List[int]]:
    """Our label -> the source's class index, or None to keep the order:
    ``thing_ids`` (the source's thing indices) put those first; a dataset
    whose classes interleave things and stuff puts its things first."""
    from m2f_mm.datasets.categories import INTERLEAVED, things_first_order
    from .class_order import order_from_thing_ids
    spec = DATASETS[dataset]
    if thing_ids is not None:
        if spec['task'] != 'panoptic':
            raise ConversionError(f'{where}: --thing-ids is for panoptic datasets, '
                                  f'not {dataset}')
        return order_from_thing_ids(thing_ids, arch.num_classes, where)
    if spec.get('interleaved') and arch.num_classes == spec['classes']:
        return things_first_order(INTERLEAVED[dataset])
    return None
