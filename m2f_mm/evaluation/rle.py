"""Run-length encoding of label maps, as the panoptic metric keeps them
between ``process`` and ``compute_metrics`` (small, picklable)."""
from typing import List, Sequence

import numpy as np
from pycocotools import mask as mask_util


def encode_segments(id_map: np.ndarray, ids: Sequence[int]) -> List[dict]:
    """COCO RLEs of ``id_map == i`` for each ``i`` in ``ids``.

    Args:
        id_map: ``(H, W)`` integer map of segment ids.
        ids: the ids to encode, in the order wanted.

    Returns:
        list of dict: one RLE per id (an id absent from the map gives an
        empty mask).
    """
    if not len(ids):
        return []
    h, w = id_map.shape
    cols = np.ascontiguousarray(id_map.T)  # (W, H): one transpose for all ids
    stack = cols[None] == np.asarray(ids, cols.dtype)[:, None, None]  # K×W×H
    rles = mask_util.encode(stack.view(np.uint8).transpose(2, 1, 0))
    for rle in rles:
        rle['counts'] = rle['counts'].decode()
    return rles
