"""Run-length encoding of predictions, as the fast metrics keep them between
``process`` and ``compute_metrics`` (small, picklable), the holder they
keep them in, and a garbage-collector pause for their ``compute_metrics``."""
import contextlib
import gc
from typing import Iterator, List, Sequence, Tuple

import numpy as np
import torch


class Kept:
    """One image's results, held where mmengine's ``Metric.evaluate`` does
    not walk: its ``_to_cpu`` visits every list, tuple and dict of the
    results, which for some twenty RLE dicts an image costs about as much
    as encoding them. What is held has no tensors. Pickles (for the
    collection across processes) like a plain object."""

    __slots__ = ('value',)

    def __init__(self, value) -> None:
        self.value = value

    def __getstate__(self):
        return (self.value,)  # never false: pickle skips __setstate__ for a false state

    def __setstate__(self, state) -> None:
        self.value = state[0]


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Python's cyclic garbage collector paused: building the hotcoco
    inputs allocates some ten dicts an image, none in a cycle, and a full
    collection they set off walks the whole heap (a dataset's annotations:
    millions of objects) for nothing; on 1,000 images one such walk took
    longer than the evaluation itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def unwrap(results: list) -> list:
    """``results`` with every :class:`Kept` replaced by what it holds."""
    return [r.value if isinstance(r, Kept) else r for r in results]


def _encode(masks: np.ndarray) -> List[dict]:
    """RLEs of ``(K, H, W)`` bool masks, ``counts`` as str."""
    if not len(masks):
        return []
    # imported here: `import m2f_mm` works without hotcoco (only these metrics need it)
    from hotcoco import mask as mask_util  # pycocotools' RLEs, any memory layout
    rles = mask_util.encode(masks.transpose(1, 2, 0))  # (H, W, K)
    for rle in rles:
        rle['counts'] = rle['counts'].decode()
    return rles


def encode_segments(id_map: np.ndarray, ids: Sequence[int]) -> List[dict]:
    """COCO RLEs of ``id_map == i`` for each ``i`` in ``ids``.

    Args:
        id_map: ``(H, W)`` integer map of segment ids.
        ids: the ids to encode, in the order wanted.

    Returns:
        list of dict: one RLE per id, ``counts`` a str (an id absent from
        the map gives an empty mask).
    """
    return _encode(id_map[None] == np.asarray(ids, id_map.dtype)[:, None, None])


def label_map_segments(id_map: np.ndarray, drop: Sequence[int],
                       offset: int) -> Tuple[List[int], List[dict]]:
    """The ids present in a panoptic map (``label + instance * offset``),
    those whose label is in ``drop`` left out, with their RLEs.

    The ids come from the map's runs along its rows, so only the few
    thousand run values are sorted, not every pixel.

    Returns:
        tuple: the ids (ascending) and one RLE each.
    """
    flat = id_map.reshape(-1)
    starts = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    values = np.unique(np.concatenate([flat[:1], flat[starts]]))  # every value
    ids = [int(i) for i in values[~np.isin(values % offset, np.asarray(drop, values.dtype))]]
    if ids and -2**31 <= values[0] and values[-1] < 2**31:
        id_map = id_map.astype(np.int32)  # the K×H×W comparison at half the bytes
    return ids, encode_segments(id_map, ids)


def encode_masks(masks: torch.Tensor) -> List[dict]:
    """COCO RLEs of ``(N, H, W)`` masks in one call, equal to MMDetection's
    ``encode_mask_results`` (which copies and encodes mask by mask): a
    non-bool mask is cast to uint8 as it casts it (a float 0.7 becomes 0),
    and any non-zero value after that cast is foreground.

    Returns:
        list of dict: one RLE per mask, ``counts`` a str.
    """
    masks = masks.detach().cpu()
    if masks.dtype != torch.bool:
        masks = masks.to(torch.uint8)
    return _encode(masks.numpy())
