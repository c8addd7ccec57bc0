"""Metainfo of the generated "toy shapes" dataset (``tools/make_toy_dataset.py``).

Plain Python data only (no registration, no heavy imports), so the generator,
configs and tests can all share it.

Label order (contiguous, as MMDetection and MMSegmentation see it)::

    0 circle   1 square   2 triangle   (things, COCO category ids 1..3)
    3 sky      4 grass    5 water      (stuff,  COCO category ids 4..6)

Semantic maps use 255 as ignore. Panoptic PNGs use COCO's RGB id encoding
``id = R + 256 * G + 256 ** 2 * B`` with 0 = unlabelled.

Use with:

* ``mmdet.CocoPanopticDataset(metainfo=TOY_PANOPTIC_METAINFO, ...)``
* ``mmdet.CocoDataset(metainfo=TOY_INSTANCE_METAINFO, ...)``
* ``mmseg.BaseSegDataset(metainfo=TOY_SEMSEG_METAINFO, ...)``
"""

TOY_THING_CLASSES = ('circle', 'square', 'triangle')
TOY_STUFF_CLASSES = ('sky', 'grass', 'water')
TOY_CLASSES = TOY_THING_CLASSES + TOY_STUFF_CLASSES

#: One RGB colour per class in ``TOY_CLASSES`` order (used for visualisation;
#: the stuff colours are also the base colours of their textures).
TOY_PALETTE = [
    (220, 20, 60),  # circle
    (255, 165, 0),  # square
    (148, 0, 211),  # triangle
    (135, 190, 235),  # sky
    (70, 150, 60),  # grass
    (30, 70, 160),  # water
]

#: COCO category dicts (panoptic style; ids 1..6, things first).
TOY_CATEGORIES = [
    dict(id=i + 1, name=name, isthing=int(i < len(TOY_THING_CLASSES)),
         supercategory='thing' if i < len(TOY_THING_CLASSES) else 'stuff',
         color=list(TOY_PALETTE[i]))
    for i, name in enumerate(TOY_CLASSES)
]

#: The interleaved variant (``make_toy_dataset.py --interleaved``): the same
#: classes with category ids that put stuff between things, in id order in
#: the files (sky 1, circle 2, grass 3, square 4, water 5, triangle 6), as
#: Cityscapes / ADE20K / Mapillary number theirs. Labels stay things first.
TOY_INTERLEAVED_IDS = (2, 4, 6, 1, 3, 5)  # per class of ``TOY_CLASSES``
TOY_INTERLEAVED_CATEGORIES = sorted(
    (dict(c, id=TOY_INTERLEAVED_IDS[i]) for i, c in enumerate(TOY_CATEGORIES)),
    key=lambda c: c['id'])

#: For ``CocoPanopticDataset`` (``classes`` = things + stuff).
TOY_PANOPTIC_METAINFO = dict(
    classes=TOY_CLASSES,
    thing_classes=TOY_THING_CLASSES,
    stuff_classes=TOY_STUFF_CLASSES,
    palette=TOY_PALETTE)

#: For ``m2f_mm.CocoPanopticDataset`` on the interleaved variant: labels
#: things first, each mapped to its category id.
TOY_INTERLEAVED_PANOPTIC_METAINFO = dict(TOY_PANOPTIC_METAINFO,
                                         category_ids=TOY_INTERLEAVED_IDS)

#: For ``CocoDataset`` on ``annotations/instances_*.json`` (things only).
TOY_INSTANCE_METAINFO = dict(
    classes=TOY_THING_CLASSES,
    palette=TOY_PALETTE[:len(TOY_THING_CLASSES)])

#: For ``BaseSegDataset`` on ``semantic/*`` (labels 0..5, 255 = ignore).
TOY_SEMSEG_METAINFO = dict(classes=TOY_CLASSES, palette=TOY_PALETTE)

__all__ = [
    'TOY_THING_CLASSES', 'TOY_STUFF_CLASSES', 'TOY_CLASSES', 'TOY_PALETTE',
    'TOY_CATEGORIES', 'TOY_PANOPTIC_METAINFO', 'TOY_INSTANCE_METAINFO',
    'TOY_SEMSEG_METAINFO', 'TOY_INTERLEAVED_IDS', 'TOY_INTERLEAVED_CATEGORIES',
    'TOY_INTERLEAVED_PANOPTIC_METAINFO'
]
