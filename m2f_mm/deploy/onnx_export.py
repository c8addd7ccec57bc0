"""ONNX export of a built Mask2Former (MMDetection's or MMSegmentation's
host), with standard ONNX operators only.

The graph is ``normalise → backbone (→ neck) → head → last prediction set``
(``→ semantic argmax`` for ``task='semantic'``):

- input ``image``: (B, 3, H, W) float32 RGB in 0–255, H and W multiples of
  32; the model's ``data_preprocessor`` mean, std and channel order are
  inside the graph;
- outputs ``cls_logits`` (B, Q, K+1) and ``mask_logits`` (B, Q, H/4, W/4),
  the head's last prediction set; ``semantic`` (B, H, W) int64 class ids
  with ``task='semantic'``. Panoptic and instance results come from
  :func:`m2f_mm.deploy.postprocess.postprocess` on the two logits.

The plain paths are traced (:func:`m2f_mm.ops.fast_paths` off): deformable
attention is ``GridSample`` (opset ≥ 16), masked attention a boolean mask
turned additive, and no Python branch depends on data. The exporter is
torch's TorchScript-based one (``dynamo=False``): it records the sizes the
code reads from tensors as graph operations, so one graph serves every
batch and H × W; see :func:`export_onnx`. (torch.export's exporter, torch's
default, needs onnxscript, took 10-25× longer here and fixed a Swin
graph's batch at 1.)
"""
import json
import math
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from m2f_mm.ops import fast_paths
from m2f_mm.patches import check_swin_trace_size, traceable_swin
from ..models.heads.fusion import semantic_inference

TASKS = ('raw', 'semantic', 'panoptic', 'instance')
MIN_OPSET = 16  # GridSample
METADATA_KEY = 'm2f_mm'


class Mask2FormerOnnx(nn.Module):
    """A built Mask2Former as one image → logits module for export.

    Args:
        model: ``m2f_mm.Mask2Former`` (MMDetection) or
            ``mmseg.EncoderDecoder`` with our head as ``decode_head``, in
            eval mode.
        task: ``'semantic'`` adds the class-id map output; the other tasks
            return the logits only.
    """

    def __init__(self, model: nn.Module, task: str = 'raw') -> None:
        super().__init__()
        if task not in TASKS:
            raise ValueError(f'Mask2FormerOnnx: task must be one of {TASKS}, '
                             f'got {task!r}')
        self.task = task
        self.backbone = model.backbone
        self.neck = model.neck if getattr(model, 'with_neck', False) else None
        self.head = head_of(model)
        mean, std, consumes_rgb = input_normalisation(model)
        # (x - mean) / std on the model's channel order; the graph input is RGB
        self.flip_channels = not consumes_rgb
        self.register_buffer('mean', mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', std.view(1, 3, 1, 1), persistent=False)

    def forward(self, image: Tensor) -> Tuple[Tensor, ...]:
        x = image.flip(1) if self.flip_channels else image  # B×3×H×W
        x = (x - self.mean) / self.std
        feats = self.backbone(x)
        if self.neck is not None:
            feats = self.neck(feats)
        all_cls, all_masks = self.head(feats)
        cls_logits, mask_logits = all_cls[-1], all_masks[-1]  # B×Q×(K+1), B×Q×H/4×W/4
        if self.task != 'semantic':
            return cls_logits, mask_logits
        full = F.interpolate(mask_logits, size=image.shape[-2:], mode='bilinear',
                             align_corners=False)
        semantic = semantic_inference(cls_logits, full).argmax(1)  # B×H×W
        return cls_logits, mask_logits, semantic


def head_of(model: nn.Module) -> nn.Module:
    """The Mask2Former head of either host."""
    head = getattr(model, 'panoptic_head', None) or getattr(model, 'decode_head', None)
    if head is None:
        raise TypeError(f'{type(model).__name__} has neither a panoptic_head '
                        '(MMDetection) nor a decode_head (MMSegmentation)')
    return head


def input_normalisation(model: nn.Module) -> Tuple[Tensor, Tensor, bool]:
    """(mean (3,), std (3,), whether the model consumes RGB) from the
    model's data preprocessor. Images are loaded BGR (mmcv's default), so
    a preprocessor that converts channels feeds the network RGB."""
    pre = model.data_preprocessor
    convert = bool(getattr(pre, '_channel_conversion', False) or
                   getattr(pre, 'channel_conversion', False))
    if getattr(pre, '_enable_normalize', False):
        mean = pre.mean.detach().flatten().float().cpu()
        std = pre.std.detach().flatten().float().cpu()
    else:
        mean, std = torch.zeros(3), torch.ones(3)
    if mean.numel() != 3:
        raise ValueError(f'{type(pre).__name__}: expected 3 mean/std values for '
                         f'an RGB image, got {mean.numel()}')
    return mean, std, convert


def size_divisor(model: nn.Module) -> int:
    """What test images are padded to a multiple of (MMDet:
    ``pad_size_divisor``; MMSeg: ``test_cfg.size_divisor``), at least 32,
    which the backbone's strides need."""
    pre = model.data_preprocessor
    divisor = getattr(pre, 'pad_size_divisor', None)
    if divisor is None:
        divisor = (getattr(pre, 'test_cfg', None) or {}).get('size_divisor')
    divisor = int(divisor or 1)
    return divisor * 32 // math.gcd(divisor, 32)


def pad_colour_rgb(model: nn.Module) -> List[float]:
    """The RGB 0–255 colour that becomes the preprocessor's padding value
    (0 by default, i.e. the mean colour) once normalised in the graph: the
    PyTorch preprocessors pad the normalised batch."""
    mean, std, consumes_rgb = input_normalisation(model)
    pre = model.data_preprocessor
    value = float(getattr(pre, 'pad_value', getattr(pre, 'pad_val', 0)) or 0)
    colour = mean + value * std  # in the model's channel order
    return [float(v) for v in (colour if consumes_rgb else colour.flip(0))]


def export_metadata(model: nn.Module, task: str, config_text: str = '') -> Dict:
    """What a deployment needs beside the graph: classes, palette, the
    fusion settings, input rules and (for tools/onnx_infer.py) the config."""
    head = head_of(model)
    is_seg = hasattr(model, 'decode_head')
    test_cfg = {} if is_seg else dict(getattr(model, 'test_cfg', None) or {})
    meta = getattr(model, 'dataset_meta', None) or {}
    if is_seg:
        results = ['semantic']
    else:  # what the fusion head gives in PyTorch, and the task asked for
        results = [r for r, default in (('panoptic', True), ('instance', False),
                                        ('semantic', False))
                   if test_cfg.get(f'{r}_on', default) or r == task]
    return dict(
        task=task,
        host='mmseg' if is_seg else 'mmdet',
        results=results,
        num_classes=int(head.num_classes),
        num_things=0 if is_seg else int(head.num_things_classes),
        num_queries=int(head.num_queries),
        dataset_meta=_jsonable(meta),
        object_mask_thr=float(test_cfg.get('object_mask_thr', 0.8)),
        iou_thr=float(test_cfg.get('iou_thr', 0.8)),
        filter_low_score=bool(test_cfg.get('filter_low_score', False)),
        max_per_image=int(test_cfg.get('max_per_image', 100)),
        size_divisor=size_divisor(model),
        pad_value_rgb=pad_colour_rgb(model),
        config=config_text)


def export_onnx(model: nn.Module, path: str, task: str = 'raw', opset: int = 17,
                dynamic: bool = False, input_shape: Sequence[int] = (1, 3, 512, 512),
                config_text: str = '') -> Dict:
    """Export ``model`` (eval mode is set) to ``path``.

    Args:
        model: a built MMDetection or MMSegmentation Mask2Former.
        task: ``'raw'``, ``'semantic'``, ``'panoptic'`` or ``'instance'``
            (the last two: the logits plus metadata for
            :func:`~m2f_mm.deploy.postprocess.postprocess`).
        opset: ONNX opset, at least 16 (GridSample).
        dynamic: batch, H and W as graph dimensions; else fixed at
            ``input_shape``.
        input_shape: (B, 3, H, W) of the traced example, H and W multiples
            of 32. For a Swin backbone, a size where every stage's map
            needs window padding (e.g. 128 × 128 with 7 × 7 windows) keeps
            its crop-after-padding in the graph (mmdet's Swin decides it in
            Python).
        config_text: the model's config (``Config.pretty_text``), stored
            for tools/onnx_infer.py.

    Returns:
        The metadata stored in the graph under ``'m2f_mm'`` (JSON).
    """
    import onnx

    if opset < MIN_OPSET:
        raise ValueError(f'export_onnx: opset {opset} has no GridSample; use '
                         f'{MIN_OPSET} or later')
    b, c, h, w = input_shape
    if c != 3 or h % 32 or w % 32:
        raise ValueError(f'export_onnx: input_shape must be (B, 3, H, W) with H '
                         f'and W multiples of 32, got {tuple(input_shape)}')
    if dynamic:
        check_swin_trace_size(model, h, w)
    model.eval()
    wrapper = Mask2FormerOnnx(model, task).eval()
    outputs = ['cls_logits', 'mask_logits'] + (['semantic'] if task == 'semantic' else [])
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {'image': {0: 'batch', 2: 'height', 3: 'width'},
                        'cls_logits': {0: 'batch'},
                        'mask_logits': {0: 'batch', 2: 'height_4', 3: 'width_4'},
                        'semantic': {0: 'batch', 1: 'height', 2: 'width'}}
        dynamic_axes = {k: v for k, v in dynamic_axes.items()
                        if k == 'image' or k in outputs}
    example = torch.rand(b, c, h, w) * 255
    with torch.no_grad(), fast_paths(False), traceable_swin():
        torch.onnx.export(wrapper, (example,), path, input_names=['image'],
                          output_names=outputs, opset_version=opset,
                          dynamic_axes=dynamic_axes, dynamo=False,
                          do_constant_folding=True)
    metadata = export_metadata(model, task, config_text)
    graph = onnx.load(path)
    entry = graph.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    onnx.save(graph, path)
    return metadata


def _jsonable(obj):
    """``obj`` with tuples as lists and what JSON cannot hold left out."""
    if isinstance(obj, dict):
        out = {str(k): _jsonable(v) for k, v in obj.items()}
        return {k: v for k, v in out.items() if v is not _SKIP}
    if isinstance(obj, (list, tuple)):
        return [v for v in map(_jsonable, obj) if v is not _SKIP]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if hasattr(obj, 'tolist'):  # numpy / torch scalars and arrays
        return obj.tolist()
    return _SKIP


_SKIP = object()


def compare_with_pytorch(model: nn.Module, path: str, shape: Sequence[int],
                         task: str = 'raw', seed: int = 0) -> Dict[str, float]:
    """Max abs differences of the graph's outputs in onnxruntime from the
    model's own PyTorch inference (fast paths as they are by default) on a
    random RGB image batch of ``shape``; for ``semantic`` the share of
    pixels whose class differs."""
    import onnxruntime as ort
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(tuple(shape), generator=g) * 255
    with torch.no_grad():
        expected = Mask2FormerOnnx(model.eval(), task)(image)
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    got = session.run(None, {'image': image.numpy()})
    names = [o.name for o in session.get_outputs()]
    diffs = {}
    for name, e, o in zip(names, expected, got):
        o = torch.from_numpy(o)
        if name == 'semantic':
            diffs['semantic_pixels_differ'] = float((o != e).float().mean())
        else:
            diffs[name] = float((o - e).abs().max())
    return diffs


def read_metadata(graph) -> Dict:
    """The ``'m2f_mm'`` metadata of an exported graph (an ``onnx``
    ModelProto or an onnxruntime session's ``get_modelmeta()``)."""
    props = getattr(graph, 'custom_metadata_map', None)
    if props is None:
        props = {p.key: p.value for p in graph.metadata_props}
    if METADATA_KEY not in props:
        raise ValueError('the ONNX graph carries no m2f_mm metadata: was it '
                         'written by tools/export_onnx.py?')
    return json.loads(props[METADATA_KEY])


def non_standard_domains(graph) -> List[str]:
    """Op domains of ``graph`` (and its functions) outside the standard ONNX
    domain ('' or 'ai.onnx'), e.g. ``['mmcv']``; empty when there are none."""
    nodes = list(graph.graph.node)
    for fn in graph.functions:
        nodes += list(fn.node)
    return sorted({n.domain for n in nodes} - {'', 'ai.onnx'})
