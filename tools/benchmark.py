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

    python tools/benchmark.py                       # 512², train batch 2, inference 1
    python tools/benchmark.py --profile             # where our train step goes
    python tools/benchmark.py --full-mask-loss --size 1024   # loss memory
    python tools/benchmark.py --onnx                # onnxruntime CPU vs our PyTorch

It prints Markdown ready for the README.
"""
import argparse
import contextlib
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(1, REPO)
OURS_CONFIG = osp.join(REPO, 'configs', 'mask2former_r50_coco-panoptic.py')
MMDET_CONFIG = osp.join('mask2former', 'mask2former_r50_8xb2-lsj-50e_coco-panoptic.py')
NAMES = {'m2f_mm': 'm2f_mm (ours)', 'mmdet': 'MMDetection 3.3',
         'hf': 'HF transformers'}
NUM_THINGS, NUM_STUFF = 80, 53


# ---------------------------------------------------------------- the batch
def synthetic_batch(size: int, batch: int, seed: int = 0, num_things: int = 10,
                    num_stuff: int = 5, device: str = 'cpu'):
    """Normalised-looking inputs (B, 3, size, size) and MMDet data samples.

    Each image has ``num_stuff`` stuff classes as vertical bands and
    ``num_things`` thing ellipses on top of them; ``gt_sem_seg`` holds the
    thing and stuff labels of every pixel, as MMDet's panoptic loading does.
    """
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData, PixelData

    rng = np.random.RandomState(seed)
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, size, size, generator=g)
    yy, xx = np.mgrid[:size, :size]
    samples = []
    for i in range(batch):
        sem = np.empty((size, size), np.int64)
        bands = np.linspace(0, size, num_stuff + 1).astype(int)
        stuff = rng.choice(NUM_STUFF, num_stuff, replace=False) + NUM_THINGS
        for k in range(num_stuff):
            sem[:, bands[k]:bands[k + 1]] = stuff[k]
        masks = np.zeros((num_things, size, size), np.uint8)
        labels = rng.randint(0, NUM_THINGS, num_things)
        for k in range(num_things):
            cy, cx = rng.uniform(0.1, 0.9, 2) * size
            ry, rx = rng.uniform(0.03, 0.15, 2) * size
            inside = ((yy - cy) / ry)**2 + ((xx - cx) / rx)**2 <= 1
            masks[:k, inside] = 0  # later things occlude earlier ones
            masks[k, inside] = 1
            sem[inside] = labels[k]
        sample = DetDataSample(metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size),
            batch_input_shape=(size, size), scale_factor=(1.0, 1.0),
            img_path=f'synthetic_{seed}_{i}.png'))
        sample.gt_instances = InstanceData(
            labels=torch.from_numpy(labels).long(),
            masks=BitmapMasks(masks, size, size),
            bboxes=torch.zeros(num_things, 4))
        sample.gt_sem_seg = PixelData(sem_seg=torch.from_numpy(sem)[None])
        samples.append(sample.to(device))
    return inputs.to(device), samples


# ---------------------------------------------------------------- the models
def model_configs(small: bool = False):
    """(ours, MMDet's) model configs from the two config files, backbone
    init removed (random weights, nothing downloaded). ``small`` shrinks
    the models for smoke tests (ResNet-18, 64 channels, 10 queries)."""
    import mmdet
    from mmengine.config import Config
    mmdet_path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', MMDET_CONFIG)
    ours = Config.fromfile(OURS_CONFIG).model
    ref = Config.fromfile(mmdet_path).model
    for cfg in (ours, ref):
        cfg.backbone.init_cfg = None
        cfg.data_preprocessor.pop('batch_augments', None)
    if small:
        feat, queries, points, chans = 64, 10, 1024, [64, 128, 256, 512]
        for cfg in (ours, ref):
            cfg.backbone.depth = 18
            head = cfg.panoptic_head
            head.in_channels = chans
            head.feat_channels = feat
            head.num_queries = queries
            cfg.train_cfg.num_points = points
            cfg.test_cfg.max_per_image = 20
        ours.panoptic_head.mask_channels = ref.panoptic_head.out_channels = feat
        ours.panoptic_head.pixel_decoder.ffn_dims = 2 * feat
        ours.panoptic_head.transformer_decoder.ffn_dims = 4 * feat
        pd = ref.panoptic_head.pixel_decoder
        pd.encoder.layer_cfg.self_attn_cfg.embed_dims = feat
        pd.encoder.layer_cfg.ffn_cfg.update(embed_dims=feat, feedforward_channels=2 * feat)
        pd.positional_encoding.num_feats = feat // 2
        ref.panoptic_head.positional_encoding.num_feats = feat // 2
        layer = ref.panoptic_head.transformer_decoder.layer_cfg
        layer.self_attn_cfg.embed_dims = layer.cross_attn_cfg.embed_dims = feat
        layer.ffn_cfg.update(embed_dims=feat, feedforward_channels=4 * feat)
    return ours, ref


def build_mmdet_pair(seed: int = 0, small: bool = False, device: str = 'cpu'):
    """MMDet's Mask2Former (random init) and ours with its weights."""
    import m2f_mm  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.registry import init_default_scope
    from m2f_mm.converters import convert_mmdet_state_dict
    register_all_modules(init_default_scope=False)
    init_default_scope('mmdet')
    ours_cfg, ref_cfg = model_configs(small)
    torch.manual_seed(seed)
    with _quiet_mmengine():
        ref = MODELS.build(ref_cfg)
        ref.init_weights()
        ours = MODELS.build(ours_cfg)
    missing, unexpected = ours.load_state_dict(
        convert_mmdet_state_dict(ref.state_dict()), strict=False)
    if missing or unexpected:
        raise RuntimeError(f'weight conversion left missing={missing[:5]} '
                           f'unexpected={unexpected[:5]}')
    return ours.to(device), ref.to(device)


def hf_available() -> bool:
    try:
        import transformers  # noqa: F401
        from transformers import Mask2FormerForUniversalSegmentation  # noqa: F401
        return True
    except Exception:
        return False


def build_hf(seed: int = 0, small: bool = False, device: str = 'cpu'):
    """HF's Mask2Former with its own ResNet-50 (random init), the same
    sizes, points and loss weights."""
    from transformers import (Mask2FormerConfig, Mask2FormerForUniversalSegmentation,
                              ResNetConfig)
    backbone = ResNetConfig(
        depths=[2, 2, 2, 2] if small else [3, 4, 6, 3],
        hidden_sizes=[64, 128, 256, 512] if small else [256, 512, 1024, 2048],
        layer_type='basic' if small else 'bottleneck',
        out_features=['stage1', 'stage2', 'stage3', 'stage4'])
    feat = 64 if small else 256
    cfg = Mask2FormerConfig(
        backbone_config=backbone, num_labels=NUM_THINGS + NUM_STUFF,
        num_queries=10 if small else 100, decoder_layers=10,  # 9 + the query set
        encoder_layers=6, hidden_dim=feat, feature_size=feat, mask_feature_size=feat,
        encoder_feedforward_dim=2 * feat if small else 1024,
        dim_feedforward=4 * feat if small else 2048,
        train_num_points=1024 if small else 12544, oversample_ratio=3.0,
        importance_sample_ratio=0.75, class_weight=2.0, mask_weight=5.0,
        dice_weight=5.0, no_object_weight=0.1, use_auxiliary_loss=True)
    torch.manual_seed(seed)
    return Mask2FormerForUniversalSegmentation(cfg).to(device)


def hf_targets(samples) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    """HF's (mask_labels, class_labels): things then stuff, as in MMDet."""
    from m2f_mm.models.utils.targets import ClassCounts, mask_targets
    masks, labels = [], []
    for s in samples:
        thing = s.gt_instances.masks.to_tensor(torch.bool, 'cpu')
        lab, m = mask_targets(s.gt_instances.labels, thing, s.gt_sem_seg.sem_seg[0],
                              ClassCounts(NUM_THINGS, NUM_STUFF))
        masks.append(m.float())
        labels.append(lab)
    return masks, labels


class Bench:
    """One implementation's train step and inference on a fixed batch."""

    def __init__(self, name: str, model, inputs, samples, lr: float = 1e-4,
                 infer_batch: Optional[int] = None):
        self.name = name
        self.model = model
        self.inputs = inputs
        self.samples = samples
        self.infer_batch = infer_batch or len(inputs)  # the first images
        self.optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=lr,
            weight_decay=0.05)
        if name == 'hf':
            self.hf_masks, self.hf_labels = hf_targets(samples)
            device = inputs.device
            self.hf_masks = [m.to(device) for m in self.hf_masks]
            self.hf_labels = [t.to(device) for t in self.hf_labels]
            from transformers import Mask2FormerImageProcessor
            self.processor = Mask2FormerImageProcessor(
                num_labels=NUM_THINGS + NUM_STUFF, do_resize=False,
                do_rescale=False, do_normalize=False)

    def loss(self) -> torch.Tensor:
        if self.name == 'hf':
            return self.model(pixel_values=self.inputs, mask_labels=self.hf_masks,
                              class_labels=self.hf_labels).loss
        losses = self.model.loss(self.inputs, self.samples)
        return sum(v.sum() for k, v in losses.items() if 'loss' in k)

    def train_step(self) -> float:
        """Forward, losses, backward and an AdamW step; returns the loss."""
        self.model.train()
        loss = self.loss()
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach().item()

    @torch.no_grad()
    def predict(self):
        """Inference with panoptic fusion (and MMDet's instance results)."""
        self.model.eval()
        inputs = self.inputs[:self.infer_batch]
        if self.name == 'hf':
            out = self.model(pixel_values=inputs)
            size = tuple(inputs.shape[-2:])
            return self.processor.post_process_panoptic_segmentation(
                out, threshold=0.8, overlap_mask_area_threshold=0.8,
                target_sizes=[size] * len(inputs))
        samples = [s.clone() for s in self.samples[:self.infer_batch]]
        return self.model.predict(inputs, samples)


def build_benches(impls, size, batch, device='cpu', small=False, seed=0,
                  infer_batch=None):
    inputs, samples = synthetic_batch(size, batch, seed=seed, device=device)
    benches = {}
    if 'm2f_mm' in impls or 'mmdet' in impls:
        ours, ref = build_mmdet_pair(seed, small, device)
        if 'm2f_mm' in impls:
            benches['m2f_mm'] = Bench('m2f_mm', ours, inputs, samples,
                                      infer_batch=infer_batch)
        if 'mmdet' in impls:
            benches['mmdet'] = Bench('mmdet', ref, inputs, samples,
                                     infer_batch=infer_batch)
    if 'hf' in impls:
        benches['hf'] = Bench('hf', build_hf(seed, small, device), inputs, samples,
                              infer_batch=infer_batch)
    return benches


# ---------------------------------------------------------------- equality
def output_differences(ours, ref, inputs, samples) -> Dict[str, float]:
    """Max abs differences of our outputs from MMDet's on shared weights:
    class and mask logits of all prediction sets (eval), every loss term
    with MMDet's random points replayed into our head (train), and the
    share of panoptic pixels that differ after fusion."""
    out = {}
    ours.eval()
    ref.eval()
    with torch.no_grad():
        cls_o, mask_o = ours.panoptic_head(ours.extract_feat(inputs), samples)
        cls_r, mask_r = ref.panoptic_head(ref.extract_feat(inputs), samples)
        out['logits'] = max(float((a - b).abs().max()) for a, b in
                            zip(cls_o + mask_o, cls_r + mask_r))
        pan_o = ours.predict(inputs, [s.clone() for s in samples])
        pan_r = ref.predict(inputs, [s.clone() for s in samples])
        differ = sum(int((a.pred_panoptic_seg.sem_seg != b.pred_panoptic_seg.sem_seg).sum())
                     for a, b in zip(pan_o, pan_r))
        out['panoptic_pixels_differ'] = differ / sum(
            a.pred_panoptic_seg.sem_seg.numel() for a in pan_o)
    try:
        sys.path.insert(0, osp.join(REPO, 'tests'))
        from synthetic import losses_with_same_points
    except ImportError:  # the tests folder is not there: no loss check
        return out
    finally:
        sys.path.pop(0)
    ours.train()
    ref.train()
    try:
        with torch.no_grad():
            losses_r, losses_o = losses_with_same_points(ref, ours, inputs, samples)
    finally:
        ours.eval()
        ref.eval()
    out['losses'] = max(abs(float(losses_o[k].sum()) - float(v.sum()))
                        for k, v in losses_r.items())
    out['num_loss_terms'] = len(losses_r)
    return out


# ---------------------------------------------------------------- timing
def time_alternating(fns: Dict[str, Callable], repeats: int, warmup: int = 1,
                     device: str = 'cpu') -> Dict[str, List[float]]:
    """Seconds per call of each function, called in turn A B C A B C ...;
    the first ``warmup`` rounds are not recorded."""
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
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
    """Round-by-round ratios a/b (each round measured back to back)."""
    return [x / y for x, y in zip(times[a], times[b])]


# ---------------------------------------------------------------- memory
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
    """Peak CUDA memory allocated by tensors above the start, in MiB."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = torch.cuda.memory_allocated()
    yield
    torch.cuda.synchronize()
    result['peak_mib'] = (torch.cuda.max_memory_allocated() - start) / 2**20


def peak_memory_delta(result: dict, device: str = 'cpu'):
    return peak_cuda_delta(result) if device == 'cuda' else peak_rss_delta(result)


def memory_worker(impl: str, mode: str, size: int, batch: int, small: bool,
                  point_sampled: bool = True, device: str = 'cpu') -> float:
    """Peak memory delta (MiB) of one train step / inference / loss of
    ``impl``, after one warm-up call (which also creates the optimizer
    state)."""
    if mode == 'loss':
        return loss_memory(size, batch, point_sampled, small, device)
    bench = build_benches([impl], size, batch, device=device, small=small)[impl]
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


def memory_in_subprocess(impl: str, mode: str, args, point_sampled: bool = True
                         ) -> Optional[float]:
    """Run :func:`memory_worker` in a fresh interpreter. glibc's dynamic
    mmap threshold is pinned so freed tensors go back to the system the same
    way for every implementation."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='131072',
               MALLOC_TRIM_THRESHOLD_='131072', OMP_NUM_THREADS=str(args.threads))
    cmd = [sys.executable, osp.abspath(__file__), '--memory-worker', impl,
           '--mode', mode, '--size', str(args.size), '--batch', str(args.batch),
           '--threads', str(args.threads), '--device', args.device]
    if args.small:
        cmd.append('--small')
    if not point_sampled:
        cmd.append('--no-point-sampled')
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        print(f'memory worker {impl}/{mode} failed:\n{proc.stderr[-2000:]}',
              file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])['peak_mib']


# ---------------------------------------------------------------- profile
@contextlib.contextmanager
def timed_calls(spent: Dict[str, float], patches):
    """Add the wall time of every call of ``getattr(obj, attr)`` to
    ``spent[label]`` inside the block, for (obj, attr, label) in ``patches``
    (an instance attribute shadows the method; a module's ``forward`` too)."""
    for obj, attr, label in patches:
        def timed(*args, _fn=getattr(obj, attr), _label=label, **kwargs):
            t0 = time.perf_counter()
            try:
                return _fn(*args, **kwargs)
            finally:
                spent[_label] += time.perf_counter() - t0
        setattr(obj, attr, timed)
    try:
        yield
    finally:
        for obj, attr, _ in patches:
            delattr(obj, attr)


def profile_train_step(bench: Bench, repeats: int = 1) -> Dict[str, float]:
    """Seconds per stage of OUR train step: backbone, pixel decoder,
    Transformer decoder (with the prediction heads), matching, loss (without
    matching), backward and optimizer step; medians over ``repeats``."""
    model = bench.model
    head = model.panoptic_head
    patches = [(model, 'extract_feat', 'backbone'),
               (head.pixel_decoder, 'forward', 'pixel decoder'),
               (head.transformer_decoder, 'forward', 'head forward'),
               (head.criterion.assigner, 'assign', 'matching'),
               (head.criterion, 'forward', 'loss')]
    bench.train_step()  # warm-up
    rounds = defaultdict(list)
    for _ in range(repeats):
        spent = defaultdict(float)
        model.train()
        with timed_calls(spent, patches):
            t0 = time.perf_counter()
            loss = bench.loss()
            t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        bench.optimizer.step()
        bench.optimizer.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        stages = {
            'backbone': spent['backbone'],
            'pixel decoder': spent['pixel decoder'],
            'Transformer decoder + predictions': spent['head forward'],
            'matching (costs + Hungarian)': spent['matching'],
            'loss without matching': spent['loss'] - spent['matching'],
            'targets and glue': (t1 - t0) - spent['backbone'] -
                spent['pixel decoder'] - spent['head forward'] - spent['loss'],
            'backward': t2 - t1,
            'optimizer step': t3 - t2,
        }
        for k, v in stages.items():
            rounds[k].append(v)
    return {k: median(v) for k, v in rounds.items()}


def op_profile(bench: Bench, row_limit: int = 25) -> str:
    """torch.profiler's table of the ops of one train step (CPU time)."""
    from torch.profiler import ProfilerActivity, profile
    bench.train_step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        bench.train_step()
    return prof.key_averages().table(sort_by='self_cpu_time_total',
                                     row_limit=row_limit)


# ---------------------------------------------------------------- onnx
def build_ours(seed: int = 0, small: bool = False):
    """Our model alone, random init (MMDet's init of the same shape is not
    needed for the ONNX comparison)."""
    import m2f_mm  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.registry import init_default_scope
    register_all_modules(init_default_scope=False)
    init_default_scope('mmdet')
    cfg, _ = model_configs(small)
    torch.manual_seed(seed)
    with _quiet_mmengine():
        model = MODELS.build(cfg)
        model.init_weights()
    return model.eval()


def onnx_report(args) -> str:
    """onnxruntime (CPU) against our PyTorch inference on the same model
    and the same batch: the network alone (image to logits) and with
    panoptic + instance fusion (PyTorch: ``predict``; onnxruntime: the
    graph + ``m2f_mm.deploy.postprocess``), timed alternately."""
    import tempfile
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
    rounds = '; '.join(f'{name}: ' + ', '.join(f'{r:.2f}' for r in paired_ratios(t, 'ort', 'pytorch'))
                       for name, t in (('network', net), ('with results', full)))
    return (f'onnxruntime CPU vs our PyTorch inference: Mask2Former {shape}, COCO '
            f'panoptic shape, random weights, batch {batch}, {args.size}×{args.size}, '
            f'{args.threads} threads, medians of {args.repeats} alternating rounds '
            f'(after one warm-up); opset {args.opset}, graph {size_mb:.1f} MB, '
            f'exported in {export_s:.0f} s; max |Δ| of the logits {diff:.1e}.\n\n'
            + markdown_table(['inference', 'PyTorch (s)', 'onnxruntime (s)',
                              'onnxruntime / PyTorch'], rows)
            + f'\n\nRound-by-round onnxruntime / PyTorch, {rounds}.')


# ---------------------------------------------------------------- report
def median(xs: List[float]) -> float:
    return statistics.median(xs) if xs else float('nan')


def markdown_table(header: List[str], rows: List[List[str]]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |',
             '| ' + ' | '.join('---' for _ in header) + ' |']
    lines += ['| ' + ' | '.join(r) + ' |' for r in rows]
    return '\n'.join(lines)


def results_table(train: Dict[str, List[float]], infer: Dict[str, List[float]],
                  memory: Dict[str, Optional[float]]) -> str:
    """One row per implementation, ours first; ratios are medians of the
    round-by-round ratios to ours."""
    def fmt(x, unit=''):
        return '—' if x is None or x != x else f'{x:.2f}{unit}'

    header = ['implementation', 'train step (s)', 'inference (s)',
              'peak train memory (MiB)', 'ours / it: train', 'ours / it: inference',
              'ours / it: memory']
    rows = []
    for impl in [k for k in NAMES if k in train or k in infer]:
        ours_vs = impl != 'm2f_mm'
        r_train = median(paired_ratios(train, 'm2f_mm', impl)) if ours_vs else None
        r_infer = (median(paired_ratios(infer, 'm2f_mm', impl))
                   if ours_vs and impl in infer else None)
        mem = memory.get(impl)
        r_mem = (memory['m2f_mm'] / mem if ours_vs and mem and
                 memory.get('m2f_mm') else None)
        rows.append([NAMES[impl], fmt(median(train.get(impl, []))),
                     fmt(median(infer.get(impl, []))),
                     '—' if mem is None else f'{mem:.0f}',
                     fmt(r_train, '×'), fmt(r_infer, '×'), fmt(r_mem, '×')])
    return markdown_table(header, rows)


def run_benchmark(benches: Dict[str, Bench], args) -> str:
    """Times, memory and output differences, as Markdown."""
    lines = []
    if 'm2f_mm' in benches and 'mmdet' in benches:
        diffs = output_differences(benches['m2f_mm'].model, benches['mmdet'].model,
                                   benches['m2f_mm'].inputs, benches['m2f_mm'].samples)
    else:
        diffs = {}
    train = time_alternating({k: b.train_step for k, b in benches.items()},
                             args.repeats, device=args.device)
    infer = time_alternating({k: b.predict for k, b in benches.items()},
                             args.repeats, device=args.device)
    memory = {}
    if not args.no_memory:
        for impl in benches:
            memory[impl] = memory_in_subprocess(impl, 'train', args)
    lines.append(f'Mask2Former R-50, COCO panoptic (133 classes, 100 queries, 9 layers, '
                 f'K=12544), {args.size}×{args.size}, {args.device}, {args.threads} '
                 f'threads, medians of {args.repeats} alternating rounds; train step '
                 f'(batch {args.batch}) = forward + loss + backward + AdamW step; '
                 f'inference (batch {args.infer_batch or args.batch}) = `predict` '
                 f'with panoptic + instance fusion ('
                 f'HF: `post_process_panoptic_segmentation`); peak memory = peak '
                 f'{"allocated CUDA memory" if args.device == "cuda" else "RSS"} above '
                 f'the start of a train step, each implementation in a fresh process.\n')
    lines.append(results_table(train, infer, memory))
    for impl in [k for k in benches if k != 'm2f_mm']:
        lines.append('')
        lines.append(f'Round-by-round ours / {NAMES[impl]}: train ' + ', '.join(
            f'{r:.2f}' for r in paired_ratios(train, 'm2f_mm', impl)) +
            '; inference ' + ', '.join(
            f'{r:.2f}' for r in paired_ratios(infer, 'm2f_mm', impl)) + '.')
    if diffs:
        lines.append('')
        lines.append(f'Ours vs MMDetection on shared weights: max |Δ| of the logits of '
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
    rows = [['point-sampled (K=12544)', f'{points:.0f}'],
            ['full masks', f'{full:.0f}'],
            ['full / point-sampled', f'{full / points:.1f}×']]
    return (f'Loss memory (loss + its backward on fixed predictions, 10 sets, '
            f'{args.size}², batch {args.batch}):\n\n'
            + markdown_table(['mask losses', 'peak loss memory (MiB)'], rows))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--size', type=int, default=512, help='square input size')
    parser.add_argument('--batch', type=int, default=2, help='train batch')
    parser.add_argument('--infer-batch', type=int, default=1,
                        help='inference batch (the first images of the train batch)')
    parser.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--repeats', type=int, default=5,
                        help='timed rounds (after one warm-up round)')
    parser.add_argument('--impls', default='m2f_mm,mmdet,hf',
                        help='comma-separated subset of m2f_mm, mmdet, hf')
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the peak-memory subprocesses')
    parser.add_argument('--profile', action='store_true',
                        help='profile our train step by stage and by op')
    parser.add_argument('--full-mask-loss', action='store_true',
                        help='loss memory with point-sampled vs full-mask BCE/Dice '
                             '(use with --size 1024)')
    parser.add_argument('--onnx', action='store_true',
                        help='onnxruntime CPU inference vs our PyTorch inference '
                             '(same model, --infer-batch, --size)')
    parser.add_argument('--opset', type=int, default=17, help='with --onnx')
    parser.add_argument('--small', action='store_true',
                        help='tiny models for smoke tests (ResNet-18, 64 channels)')
    parser.add_argument('--memory-worker', help=argparse.SUPPRESS)
    parser.add_argument('--mode', default='train', help=argparse.SUPPRESS)
    parser.add_argument('--no-point-sampled', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.memory_worker:
        peak = memory_worker(args.memory_worker, args.mode, args.size, args.batch,
                             args.small, not args.no_point_sampled, args.device)
        print(json.dumps(dict(peak_mib=peak)))
        return

    if args.full_mask_loss:
        print(full_mask_report(args))
        return

    if args.onnx:
        print(onnx_report(args))
        return

    impls = [i for i in args.impls.split(',') if i]
    if 'hf' in impls and not hf_available():
        print('transformers is not installed: HF left out', file=sys.stderr)
        impls.remove('hf')
    if not 1 <= args.infer_batch <= args.batch:
        parser.error(f'--infer-batch must be in [1, --batch={args.batch}], '
                     f'got {args.infer_batch}')
    benches = build_benches(impls, args.size, args.batch, args.device, args.small,
                            infer_batch=args.infer_batch)

    if args.profile:
        bench = benches['m2f_mm']
        stages = profile_train_step(bench, args.repeats)
        total = sum(stages.values())
        print(f'## Our train step by stage ({args.size}², batch {args.batch}, '
              f'{args.threads} threads)\n')
        print(markdown_table(['stage', 'seconds', 'share'], [
            [k, f'{v:.3f}', f'{100 * v / total:.0f}%'] for k, v in stages.items()]))
        print('\n## By op (one train step)\n')
        print(op_profile(bench))
        return

    report = run_benchmark(benches, args)
    print(report)


@contextlib.contextmanager
def _quiet_mmengine():
    import logging
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


if __name__ == '__main__':
    main()
