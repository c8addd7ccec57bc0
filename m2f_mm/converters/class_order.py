"""Things first: the classifier rows of a checkpoint whose classes
interleave things and stuff, moved into our head's order.

The paper's Cityscapes, ADE20K and Mapillary Vistas panoptic models number
their classes as the datasets do (Cityscapes' stuff first, ADE20K's and
Mapillary's things and stuff mixed). Our head, its fusion and MMDetection's
panoptic code take labels ``< num_things`` as things, so the converter
reorders the class logits' rows once: label ``j`` of ours is row
``order[j]`` of the original, and the no-object row stays last. The
written config's metainfo lists the classes in that order with their
dataset category ids (:mod:`m2f_mm.datasets.categories`), so results come
out in the dataset's ids.
"""
from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor

from .loading import ConversionError

CLS_KEYS = ('transformer_decoder.cls_embed.weight', 'transformer_decoder.cls_embed.bias')


def order_from_thing_ids(thing_ids: Sequence[int], num_classes: int,
                         where: str) -> List[int]:
    """The things (original indices, in their original order), then the rest."""
    bad = [i for i in thing_ids if not 0 <= i < num_classes]
    if bad:
        raise ConversionError(f'{where}: --thing-ids {bad} are outside [0, {num_classes})')
    things = sorted(set(thing_ids))
    return things + [i for i in range(num_classes) if i not in set(things)]


def check_order(order: Sequence[int], num_classes: int, where: str) -> None:
    if sorted(order) != list(range(num_classes)):
        raise ConversionError(f'{where}: the class order has {len(order)} entries that '
                              f'are not a permutation of the {num_classes} classes')


def reorder_classes(state: Dict[str, Tensor], order: Sequence[int], head_prefix: str,
                    where: str) -> None:
    """Move the class logits' rows of ``state`` (our layout) in place: new
    row ``j`` = old row ``order[j]``; the no-object row (the last) stays."""
    for key in CLS_KEYS:
        key = head_prefix + key
        if key not in state:
            raise ConversionError(f'{where}: {key} is missing; cannot reorder the classes')
        value = state[key]
        check_order(order, value.shape[0] - 1, where)
        if value.is_meta:
            continue  # a layout read from names and shapes only
        rows = torch.as_tensor(list(order) + [len(order)], device=value.device)
        state[key] = value.index_select(0, rows)


def reorder_list(values: Optional[list], order: Sequence[int]) -> Optional[list]:
    """Per-class values (+ optional no-object last) in the new order."""
    if values is None:
        return None
    return [values[i] for i in order] + list(values[len(order):])
