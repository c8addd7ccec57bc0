"""onnxruntime (CPU) against our PyTorch inference on the same model."""
import os.path as osp
import tempfile
import time

import torch

from .batch import synthetic_batch
from .models import build_ours
from .report import markdown_table
from .timing import median, paired_ratios, time_alternating


def onnx_report(args) -> str:
    """onnxruntime (CPU) against our PyTorch inference (CPU) on the same
    model and the same batch: the network alone (image to logits) and with
    panoptic + instance fusion (PyTorch: ``predict``; onnxruntime: the
    graph + ``m2f_mm.deploy.postprocess``), timed alternately."""
    from m2f_mm.deploy import export_onnx
    from m2f_mm.deploy.onnx_export import Mask2FormerOnnx
    from m2f_mm.deploy.runtime import OnnxMask2Former

    model = build_ours(small=args.small)
    batch = args.infer_batch
    g = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (batch, 3, args.size, args.size), generator=g).float()
    _, samples = synthetic_batch(args.size, batch)
    pre = model.data_preprocessor
    normalised = (rgb - pre.mean) / pre.std  # the model consumes RGB
    wrapper = Mask2FormerOnnx(model)
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'model.onnx')
        t0 = time.perf_counter()
        export_onnx(model, path, task='panoptic', opset=args.opset,
                    input_shape=(batch, 3, args.size, args.size))
        export_s = time.perf_counter() - t0
        size_mb = osp.getsize(path) / 2**20
        # no spin-waiting threads left to slow the PyTorch call after it
        runner = OnnxMask2Former(path, threads=args.threads, spinning=False)
    image = rgb.numpy()
    shapes = [(args.size, args.size)] * batch
    tasks = ['panoptic', 'instance']

    def torch_network():
        with torch.no_grad():
            return wrapper(rgb)

    def torch_predict():
        with torch.no_grad():
            return model.predict(normalised, [s.clone() for s in samples])

    def ort_network():
        return runner(image)

    def ort_predict():
        outs = runner(image)
        return [runner.results(outs, i, shapes[i], tasks=tasks) for i in range(batch)]

    expected, got = torch_network(), ort_network()
    diff = max(float((torch.from_numpy(got[k]) - e).abs().max())
               for k, e in zip(('cls_logits', 'mask_logits'), expected))
    net = time_alternating({'pytorch': torch_network, 'ort': ort_network},
                           args.repeats)
    full = time_alternating({'pytorch': torch_predict, 'ort': ort_predict},
                            args.repeats)
    rows = []
    for name, times in (('network (image → logits)', net),
                        ('+ panoptic and instance results', full)):
        rows.append([name, f'{median(times["pytorch"]):.3f}',
                     f'{median(times["ort"]):.3f}',
                     f'{median(paired_ratios(times, "ort", "pytorch")):.2f}×'])
    shape = 'small (ResNet-18, 64 channels)' if args.small else 'R-50'
    rounds = '; '.join(
        f'{name}: ' + ', '.join(f'{r:.2f}' for r in paired_ratios(t, 'ort', 'pytorch'))
        for name, t in (('network', net), ('with results', full)))
    return (f'onnxruntime CPU vs our PyTorch inference: Mask2Former {shape}, COCO '
            f'panoptic shape, random weights, batch {batch}, {args.size}×{args.size}, '
            f'{args.threads} threads, medians of {args.repeats} alternating rounds '
            f'(after one warm-up); opset {args.opset}, graph {size_mb:.1f} MB, '
            f'exported in {export_s:.0f} s; max |Δ| of the logits {diff:.1e}.\n\n'
            + markdown_table(['inference', 'PyTorch (s)', 'onnxruntime (s)',
                              'onnxruntime / PyTorch'], rows)
            + f'\n\nRound-by-round onnxruntime / PyTorch, {rounds}.')
