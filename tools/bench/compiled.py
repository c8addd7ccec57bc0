"""``--compile``: our model compiled (``torch.compile`` of the backbone and
the head, as ``compile=True`` in a config does) against the same model
eager, on the same batch; the first compiled call (tracing and code
generation) is reported apart from the steady-state timings."""
import copy
import time

from .report import markdown_table
from .runner import Bench, build_benches
from .timing import median, paired_ratios, synchronizer, time_alternating


def _first_call(bench: Bench, method: str) -> float:
    sync = synchronizer(bench.inputs.device)
    sync()
    start = time.perf_counter()
    getattr(bench, method)()
    sync()
    return time.perf_counter() - start


def compile_report(args) -> str:
    """Markdown: per mode (inference; with ``--compile-train`` also the
    train step) the first compiled call, eager and compiled medians and the
    median round-by-round speed-up."""
    from m2f_mm.utils.compile import compile_network
    eager = build_benches(['m2f_mm'], args.size, args.batch, args.device,
                          args.small, infer_batch=args.infer_batch,
                          amp=args.amp)['m2f_mm']
    model = copy.deepcopy(eager.model)
    compile_network(model, {})
    compiled = Bench('m2f_mm', model, eager.inputs, eager.samples,
                     infer_batch=args.infer_batch, amp=args.amp)
    modes = ['predict'] + (['train_step'] if args.compile_train else [])
    rows = []
    for method in modes:
        first = _first_call(compiled, method)
        _first_call(eager, method)
        times = time_alternating({'eager': getattr(eager, method),
                                  'compiled': getattr(compiled, method)},
                                 args.repeats, warmup=args.warmup, device=args.device)
        speedup = median(paired_ratios(times, 'eager', 'compiled'))
        name = (f'inference, batch {args.infer_batch}' if method == 'predict'
                else f'train step, batch {args.batch}')
        rows.append([name, f'{first:.1f}', f'{median(times["eager"]):.3f}',
                     f'{median(times["compiled"]):.3f}', f'{speedup:.2f}×'])
    model_name = 'R-18, 64 channels (--small)' if args.small else 'R-50 COCO panoptic'
    header = (f'{model_name}, {args.size}², {args.device}, {args.threads} threads, '
              f'{args.repeats} rounds after {args.warmup} warm-up\n\n')
    return header + markdown_table(
        ['', 'first compiled call (s)', 'eager (s)', 'compiled (s)',
         'speed-up (eager / compiled)'], rows)
