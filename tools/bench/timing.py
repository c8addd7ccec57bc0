"""Wall time of the implementations, alternating round by round, with CUDA
work waited for; round-by-round ratios and medians."""
import statistics
import time
from collections import defaultdict
from typing import Callable, Dict, List

import torch


def synchronizer(device) -> Callable[[], None]:
    """What to call before reading the clock: CUDA kernels run
    asynchronously, so a step's time is only known once they have finished."""
    if torch.device(device).type == 'cuda':
        return torch.cuda.synchronize
    return lambda: None


def time_alternating(fns: Dict[str, Callable], repeats: int, warmup: int = 1,
                     device: str = 'cpu') -> Dict[str, List[float]]:
    """Seconds per call of each function, called in turn A B C A B C ...;
    the first ``warmup`` rounds are not recorded."""
    sync = synchronizer(device)
    times = defaultdict(list)
    for r in range(warmup + repeats):
        for name, fn in fns.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            dt = time.perf_counter() - t0
            if r >= warmup:
                times[name].append(dt)
    return dict(times)


def paired_ratios(times: Dict[str, List[float]], a: str, b: str) -> List[float]:
    """Round-by-round ratios a/b (each round measured back to back); none
    when either was not timed."""
    return [x / y for x, y in zip(times.get(a, []), times.get(b, []))]


def median(xs: List[float]) -> float:
    return statistics.median(xs) if xs else float('nan')
