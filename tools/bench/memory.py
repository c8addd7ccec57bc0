"""Peak memory of a train step (peak RSS on the CPU, peak allocated CUDA
memory on a GPU), each implementation in a fresh process."""
import contextlib
import json
import os
import subprocess
import sys
from typing import Optional

import torch

from . import CLI
from .batch import synthetic_batch
from .models import build_mmdet_pair
from .runner import build_benches


def _rss_kb(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'no {field} in /proc/self/status')


@contextlib.contextmanager
def peak_rss_delta(result: dict):
    """Peak resident memory above the starting point inside the block, in
    MiB (Linux: resets the high-water mark through /proc/self/clear_refs)."""
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    start = _rss_kb('VmRSS')
    yield
    result['peak_mib'] = (_rss_kb('VmHWM') - start) / 1024


@contextlib.contextmanager
def peak_cuda_delta(result: dict):
    """Peak CUDA memory allocated by tensors above the start, in MiB: what
    is allocated before (weights, optimizer state) does not count."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = torch.cuda.memory_allocated()
    yield
    torch.cuda.synchronize()
    result['peak_mib'] = (torch.cuda.max_memory_allocated() - start) / 2**20


def peak_memory_delta(result: dict, device: str = 'cpu'):
    if torch.device(device).type == 'cuda':
        return peak_cuda_delta(result)
    return peak_rss_delta(result)


def memory_worker(impl: str, mode: str, size: int, batch: int, small: bool,
                  point_sampled: bool = True, device: str = 'cpu',
                  amp: Optional[str] = None, infer_batch: Optional[int] = None,
                  optimizer: str = 'plain') -> float:
    """Peak memory delta (MiB) of one train step / inference / loss of
    ``impl``, after one warm-up call (which also creates the optimizer
    state). ``amp`` as in :class:`Bench` (the loss alone runs in fp32)."""
    if mode == 'loss':
        return loss_memory(size, batch, point_sampled, small, device)
    bench = build_benches([impl], size, batch, device=device, small=small,
                          infer_batch=infer_batch, amp=amp, optimizer=optimizer)[impl]
    fn = bench.train_step if mode == 'train' else bench.predict
    fn()
    result = {}
    with peak_memory_delta(result, device):
        fn()
    return result['peak_mib']


def loss_memory(size: int, batch: int, point_sampled: bool, small: bool,
                device: str = 'cpu') -> float:
    """Peak memory delta (MiB) of our loss and its backward alone: the
    prediction sets are detached leaves (their gradients count), the
    targets built beforehand."""
    ours, _ = build_mmdet_pair(0, small, device)
    head = ours.panoptic_head
    head.criterion.point_sampled_loss = point_sampled
    inputs, samples = synthetic_batch(size, batch, device=device)
    with torch.no_grad():
        all_cls, all_masks = head(ours.extract_feat(inputs))
    all_cls = [c.detach().requires_grad_() for c in all_cls]
    all_masks = [m.detach().requires_grad_() for m in all_masks]
    from m2f_mm.models.heads.hosts import targets_from_samples
    targets = targets_from_samples(samples, head.counts, head.ignore_index)

    def step():
        losses = head.criterion(all_cls, all_masks, targets)
        sum(losses.values()).backward()
        for t in all_cls + all_masks:
            t.grad = None
    step()
    result = {}
    with peak_memory_delta(result, device):
        step()
    return result['peak_mib']


def worker_command(impl: str, mode: str, args, point_sampled: bool = True) -> list:
    """The command line of ``tools/benchmark.py --memory-worker``, with
    every setting that changes memory: size, batches, device, ``--amp``,
    ``--tf32`` and ``--cfg-options``."""
    cmd = [sys.executable, CLI, '--memory-worker', impl,
           '--mode', mode, '--size', str(args.size), '--batch', str(args.batch),
           '--infer-batch', str(getattr(args, 'infer_batch', None) or args.batch),
           '--threads', str(args.threads), '--device', args.device,
           '--amp', getattr(args, 'amp', None) or 'none',
           '--optimizer', getattr(args, 'optimizer', None) or 'plain']
    if getattr(args, 'tf32', None):
        cmd += ['--tf32', args.tf32]
    if args.small:
        cmd.append('--small')
    if not point_sampled:
        cmd.append('--no-point-sampled')
    options = getattr(args, 'cfg_options', None)
    if options:
        cmd += ['--cfg-options'] + [f'{k}={v!r}' for k, v in options.items()]
    return cmd


def memory_in_subprocess(impl: str, mode: str, args, point_sampled: bool = True
                         ) -> Optional[float]:
    """Run :func:`memory_worker` in a fresh interpreter; None (and its
    stderr's end printed) when it fails. glibc's dynamic mmap threshold is
    pinned so freed tensors go back to the system the same way for every
    implementation."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='131072',
               MALLOC_TRIM_THRESHOLD_='131072', OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(worker_command(impl, mode, args, point_sampled),
                          capture_output=True, text=True, env=env)
    if proc.returncode:
        print(f'memory worker {impl}/{mode} failed:\n{proc.stderr[-2000:]}',
              file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])['peak_mib']
