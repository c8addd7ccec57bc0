"""Large point and cost computations in pieces (a CPU fast path).

Temporaries of up to ``CHUNK_ELEMENTS`` values (16 MB in float32) are served
by glibc from its heap; larger ones are fresh mappings whose pages fault in
one by one, which is slow on the VMs we measured. Chunking changes no value:
each piece computes the same rows as the whole would.
"""
from typing import Iterator

from .fast_paths import fast_paths_enabled

CHUNK_ELEMENTS = 1 << 22


def chunks(total: int, elements_per_item: int) -> Iterator[range]:
    """Consecutive ranges covering ``range(total)`` whose items hold at most
    ``CHUNK_ELEMENTS`` values together (at least one item each); a single
    range when the fast paths are off."""
    if not fast_paths_enabled():
        step = max(total, 1)
    else:
        step = max(1, CHUNK_ELEMENTS // max(elements_per_item, 1))
    for start in range(0, total, step):
        yield range(start, min(total, start + step))
