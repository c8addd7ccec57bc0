"""Speed and memory of m2f_mm's Mask2Former against MMDetection 3.3's (and
Hugging Face's ``Mask2FormerForUniversalSegmentation`` when transformers is
installed), and how far our outputs are from MMDetection's on shared weights.

All models are the R-50 COCO-panoptic Mask2Former (133 classes, 100 queries,
9 decoder layers, K = 12544 points) with random weights, built from
``configs/mask2former_r50_coco-panoptic.py`` and MMDet's own
``mask2former_r50_8xb2-lsj-50e_coco-panoptic.py``; ours gets MMDet's weights
converted, HF's model its own ResNet-50 of the same shape. The batch is
synthetic and seeded: 10 thing and 5 stuff regions per image. Timings
alternate the implementations (A B C A B C ...) so that load from other
processes hits all of them alike, and ratios are medians of round-by-round
ratios; peak memory is measured for each implementation in a fresh process.
On a GPU the timings wait for CUDA work, memory is CUDA memory, and
``--amp`` / ``--tf32`` apply to every implementation alike; one that fails
(no bf16 kernel, say) is reported and left out, not fatal.

    python tools/benchmark.py                       # 512², train batch 2, inference 1
    python tools/benchmark.py --profile             # where our train step goes
    python tools/benchmark.py --count-ops           # aten ops per train step
    python tools/benchmark.py --count-ops --optimizer config   # ... as the configs train
    python tools/benchmark.py --full-mask-loss --size 1024   # loss memory
    python tools/benchmark.py --onnx                # onnxruntime CPU vs our PyTorch
    python tools/benchmark.py --compile --compile-train   # torch.compile vs eager
    python tools/benchmark.py --device cuda --size 1024 --amp bf16 --tf32 on

It prints Markdown ready for the README. The parts live in ``tools/bench/``.
"""
import argparse
import json
import sys

import torch
from mmengine.config import DictAction

from bench.models import hf_available
from bench.precision import set_tf32


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--size', type=int, default=512, help='square input size')
    parser.add_argument('--batch', type=int, default=2, help='train batch')
    parser.add_argument('--infer-batch', type=int, default=1,
                        help='inference batch (the first images of the train batch)')
    parser.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--amp', choices=['none', 'fp16', 'bf16'], default='none',
                        help='autocast dtype of forward, loss and inference '
                             '(fp16 with a GradScaler); default fp32')
    parser.add_argument('--tf32', choices=['on', 'off'], default=None,
                        help='TF32 for CUDA matmuls and cuDNN convolutions; '
                             "default: PyTorch's (matmuls off, cuDNN on)")
    parser.add_argument('--repeats', type=int, default=5, help='timed rounds')
    parser.add_argument('--warmup', type=int, default=1,
                        help='untimed rounds before them (at least 1)')
    parser.add_argument('--impls', default='m2f_mm,mmdet,hf',
                        help='comma-separated subset of m2f_mm, mmdet, hf')
    parser.add_argument('--optimizer', choices=['plain', 'config'], default='plain',
                        help="the train step's optimizer: one AdamW for all (plain) or "
                             "each implementation's config: its parameter groups and "
                             "gradient clipping (see tools/bench/optim.py)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override settings of OUR model config (keys below '
                             '`model`), e.g. panoptic_head.pixel_decoder.with_cp=True')
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the peak-memory subprocesses')
    parser.add_argument('--profile', action='store_true',
                        help='profile our train step by stage and by op')
    parser.add_argument('--count-ops', action='store_true',
                        help='aten operators per train step of each implementation '
                             '(CPU profiler, fast paths off: the ops CUDA launches)')
    parser.add_argument('--full-mask-loss', action='store_true',
                        help='loss memory with point-sampled vs full-mask BCE/Dice '
                             '(use with --size 1024)')
    parser.add_argument('--onnx', action='store_true',
                        help='onnxruntime CPU inference vs our PyTorch inference '
                             '(same model, --infer-batch, --size)')
    parser.add_argument('--opset', type=int, default=17, help='with --onnx')
    parser.add_argument('--compile', action='store_true',
                        help='our model compiled (torch.compile of backbone and '
                             'head) vs eager: inference')
    parser.add_argument('--compile-train', action='store_true',
                        help='with --compile: the train step too')
    parser.add_argument('--small', action='store_true',
                        help='tiny models for smoke tests (ResNet-18, 64 channels)')
    parser.add_argument('--memory-worker', help=argparse.SUPPRESS)
    parser.add_argument('--mode', default='train', help=argparse.SUPPRESS)
    parser.add_argument('--no-point-sampled', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error(f'--device cuda: no CUDA device available to torch '
                     f'{torch.__version__}')
    benchmarking = not (args.memory_worker or args.full_mask_loss or args.onnx)
    if benchmarking and not 1 <= args.infer_batch <= args.batch:
        parser.error(f'--infer-batch must be in [1, --batch={args.batch}], '
                     f'got {args.infer_batch}')
    if args.warmup < 1:
        parser.error(f'--warmup must be at least 1 (failures are caught there), '
                     f'got {args.warmup}')
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    set_tf32(args.tf32)  # before any model: the same for every implementation
    if args.cfg_options:
        from bench import models
        models.OURS_OPTIONS.update(args.cfg_options)

    if args.memory_worker:
        from bench.memory import memory_worker
        peak = memory_worker(args.memory_worker, args.mode, args.size, args.batch,
                             args.small, not args.no_point_sampled, args.device,
                             args.amp, args.infer_batch, args.optimizer)
        print(json.dumps(dict(peak_mib=peak)))
        return

    if args.full_mask_loss:
        from bench.report import full_mask_report
        print(full_mask_report(args))
        return

    if args.onnx:
        from bench.onnx_report import onnx_report
        print(onnx_report(args))
        return

    if args.compile:
        from bench.compiled import compile_report
        print(compile_report(args))
        return

    from bench.runner import build_benches
    impls = [i for i in args.impls.split(',') if i]
    if 'hf' in impls and not hf_available():
        print('transformers is not installed: HF left out', file=sys.stderr)
        impls.remove('hf')
    benches = build_benches(impls, args.size, args.batch, args.device, args.small,
                            infer_batch=args.infer_batch, amp=args.amp,
                            optimizer=args.optimizer)

    if args.profile:
        from bench.profiling import profile_report
        print(profile_report(benches['m2f_mm'], args))
        return

    if args.count_ops:
        from bench.profiling import op_count_report
        print(op_count_report(benches, args))
        return

    from bench.report import run_benchmark
    print(run_benchmark(benches, args))


if __name__ == '__main__':
    main()
