"""The benchmark's run and its Markdown: the header, a row per
implementation, the round-by-round ratios and the equality check."""
import sys
from typing import Collection, Dict, List, Optional

from . import NAMES
from .equality import output_differences
from .memory import memory_in_subprocess
from .precision import amp_mode, tf32_state
from .runner import Bench, one_line, warm_up
from .timing import median, paired_ratios, time_alternating


def markdown_table(header: List[str], rows: List[List[str]]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |',
             '| ' + ' | '.join('---' for _ in header) + ' |']
    lines += ['| ' + ' | '.join(r) + ' |' for r in rows]
    return '\n'.join(lines)


def results_table(train: Dict[str, List[float]], infer: Dict[str, List[float]],
                  memory: Dict[str, Optional[float]], batch: Optional[int] = None,
                  infer_batch: Optional[int] = None,
                  failed_train: Collection[str] = (),
                  failed_infer: Collection[str] = (),
                  nan_loss: Optional[Dict[str, str]] = None) -> str:
    """One row per implementation, ours first; ratios are medians of the
    round-by-round ratios to ours.

    Args:
        train, infer: seconds per round of each implementation.
        memory: peak train memory (MiB) of each, None when not measured.
        batch, infer_batch: images per train step / inference; with them,
            images per second (batch / median time) get their own columns.
        failed_train, failed_infer: implementations whose warm-up raised:
            'failed' in their time cells, '—' in what follows from them.
        nan_loss: {impl: 'NaN loss in ...'} of the implementations with a
            NaN or inf training loss (timed all the same, marked in the
            train cell).
    """
    def fmt(x, unit=''):
        return '—' if x is None or x != x else f'{x:.2f}{unit}'

    def seconds(impl, times, failed, note=''):
        t = median(times.get(impl, []))
        if impl in failed:
            return 'failed'
        # a GPU step takes tens of milliseconds: three decimals there
        return ('—' if t != t else f'{t:.3f}' if t < 1 else f'{t:.2f}') + note

    def per_second(impl, times, images):
        return fmt(images / median(times[impl])) if impl in times else '—'

    header = ['implementation', 'train step (s)', 'inference (s)',
              'peak train memory (MiB)', 'ours / it: train', 'ours / it: inference',
              'ours / it: memory']
    if batch:
        header[2:2] = ['train images/s']
    if infer_batch:
        header.insert(header.index('inference (s)') + 1, 'inference images/s')
    rows = []
    shown = set(train) | set(infer) | set(failed_train) | set(failed_infer)
    for impl in [k for k in NAMES if k in shown]:
        ours_vs = impl != 'm2f_mm'
        r_train = median(paired_ratios(train, 'm2f_mm', impl)) if ours_vs else None
        r_infer = median(paired_ratios(infer, 'm2f_mm', impl)) if ours_vs else None
        mem = memory.get(impl)
        r_mem = (memory['m2f_mm'] / mem if ours_vs and mem and
                 memory.get('m2f_mm') else None)
        bad_loss = (nan_loss or {}).get(impl)
        row = [NAMES[impl], seconds(impl, train, failed_train,
                                    f' ({bad_loss.split(" in ")[0]})' if bad_loss else '')]
        if batch:
            row.append(per_second(impl, train, batch))
        row.append(seconds(impl, infer, failed_infer))
        if infer_batch:
            row.append(per_second(impl, infer, infer_batch))
        row += ['—' if mem is None else f'{mem:.0f}',
                fmt(r_train, '×'), fmt(r_infer, '×'), fmt(r_mem, '×')]
        rows.append(row)
    return markdown_table(header, rows)


def _rounds(times: Dict[str, List[float]], impl: str) -> str:
    ratios = paired_ratios(times, 'm2f_mm', impl)
    return ', '.join(f'{r:.2f}' for r in ratios) if ratios else '—'


def _optimizer(args) -> str:
    if getattr(args, 'optimizer', 'plain') == 'config':
        return ("each implementation's config: parameter groups and clipping; "
                'HF: one AdamW')
    return 'one AdamW for all, no clipping'


def header(args) -> str:
    """What was measured and how: model, size, device, precision, TF32."""
    model = ('Mask2Former small (ResNet-18, 64 channels), COCO panoptic (133 classes, '
             '10 queries, 9 layers, K=1024)' if args.small else
             'Mask2Former R-50, COCO panoptic (133 classes, 100 queries, 9 layers, '
             'K=12544)')
    amp = amp_mode(getattr(args, 'amp', None))
    precision = ('fp32' if amp is None else f'{amp} autocast (forward, loss and '
                 f'inference)' + (' + GradScaler' if amp == 'fp16' else ''))
    warmup = getattr(args, 'warmup', 1)
    memory = 'allocated CUDA memory' if args.device == 'cuda' else 'RSS'
    return (f'{model}, {args.size}×{args.size}, '
            f'{args.device}, {args.threads} threads, {precision}; medians of '
            f'{args.repeats} alternating rounds after {warmup} warm-up '
            f'round{"s" if warmup != 1 else ""}; train step (batch {args.batch}) = '
            f'forward + loss + backward + AdamW step ({_optimizer(args)}); inference (batch '
            f'{args.infer_batch or args.batch}) = `predict` with panoptic + instance '
            f'fusion (HF: `post_process_panoptic_segmentation`); images/s = batch / '
            f'median time; peak memory = peak {memory} above the start of a train '
            f'step, each implementation in a fresh process.\n'
            f'{tf32_state(getattr(args, "tf32", None))}\n' + _options(args))


def _options(args) -> str:
    options = getattr(args, 'cfg_options', None)
    if not options:
        return ''
    return 'Ours with ' + ', '.join(f'`{k}={v!r}`' for k, v in options.items()) + '.\n'


def run_benchmark(benches: Dict[str, Bench], args) -> str:
    """Times, memory and output differences, as Markdown. An implementation
    that raises in its warm-up is left out of the timings and shown as
    failed (see :func:`warm_up`)."""
    diffs = {}
    if 'm2f_mm' in benches and 'mmdet' in benches:
        ours = benches['m2f_mm']
        try:
            diffs = output_differences(ours.model, benches['mmdet'].model,
                                       ours.inputs, ours.samples)
        except Exception as e:  # noqa: BLE001  (reported; the timings go on)
            diffs = {'error': one_line(e)}
            print(f'ours vs MMDetection check failed: {diffs["error"]}', file=sys.stderr)
    warmup = getattr(args, 'warmup', 1)
    failed_train = warm_up(benches, 'train_step', warmup)
    train = time_alternating({k: b.train_step for k, b in benches.items()
                              if k not in failed_train}, args.repeats, warmup=0,
                             device=args.device)
    failed_infer = warm_up(benches, 'predict', warmup)
    infer = time_alternating({k: b.predict for k, b in benches.items()
                              if k not in failed_infer}, args.repeats, warmup=0,
                             device=args.device)
    memory = {}
    if not args.no_memory:
        for impl in benches:
            if impl not in failed_train:  # its worker would fail the same way
                memory[impl] = memory_in_subprocess(impl, 'train', args)
    nan_loss = {k: b.nonfinite_losses() for k, b in benches.items()
                if b.nonfinite_losses()}
    lines = [header(args), results_table(
        train, infer, memory, args.batch, args.infer_batch or args.batch,
        failed_train, failed_infer, nan_loss)]
    for impl in [k for k in benches if k != 'm2f_mm']:
        lines.append('')
        lines.append(f'Round-by-round ours / {NAMES[impl]}: train '
                     f'{_rounds(train, impl)}; inference {_rounds(infer, impl)}.')
    amp = amp_mode(getattr(args, 'amp', None))
    under = f' under AMP {amp}' if amp else ''
    for phase, failed in (('train step', failed_train), ('inference', failed_infer)):
        for impl, error in failed.items():
            lines += ['', f'{NAMES[impl]}: {phase} failed{under}: {error}']
    for impl, what in nan_loss.items():
        lines += ['', f'{NAMES[impl]}: {what}.']
    if 'error' in diffs:
        lines += ['', f'Ours vs MMDetection on shared weights: not measured ({diffs["error"]}).']
    elif diffs:
        lines.append('')
        lines.append(f'Ours vs MMDetection on shared weights (fp32): max |Δ| of the logits of '
                     f'all 10 prediction sets {diffs["logits"]:.1e}'
                     + (f', of the {diffs["num_loss_terms"]} loss terms with the same '
                        f'random points {diffs["losses"]:.1e}' if 'losses' in diffs else '')
                     + f'; panoptic pixels that differ: '
                     f'{100 * diffs["panoptic_pixels_differ"]:.3f}%.')
    return '\n'.join(lines)


def full_mask_report(args) -> str:
    """Peak memory of our loss (+ its backward) with point-sampled vs
    full-mask BCE/Dice, each in a fresh process."""
    points = memory_in_subprocess('m2f_mm', 'loss', args, point_sampled=True)
    full = memory_in_subprocess('m2f_mm', 'loss', args, point_sampled=False)
    if points is None or full is None:
        return 'Loss memory: a memory worker failed (its error is above).'
    rows = [['point-sampled (K=12544)', f'{points:.0f}'],
            ['full masks', f'{full:.0f}'],
            ['full / point-sampled', f'{full / points:.1f}×']]
    return (f'Loss memory (loss + its backward on fixed predictions, 10 sets, '
            f'{args.size}², batch {args.batch}):\n\n'
            + markdown_table(['mask losses', 'peak loss memory (MiB)'], rows))
