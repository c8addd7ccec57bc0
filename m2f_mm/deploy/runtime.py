"""An exported Mask2Former in onnxruntime: batching and padding the way
the PyTorch preprocessors do, and results through
:func:`m2f_mm.deploy.postprocess.postprocess`. Needs numpy and onnxruntime
only."""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .onnx_export import read_metadata
from .postprocess import postprocess


class OnnxMask2Former:
    """Args:
        path: a graph written by tools/export_onnx.py.
        providers: onnxruntime execution providers (default CPU).
        threads: intra-op threads (default: onnxruntime's choice).
        spinning: let idle onnxruntime threads spin-wait for work (its
            default); off, they leave the cores to other work in the
            process, e.g. PyTorch timed alternately against it.
    """

    def __init__(self, path: str, providers: Optional[Sequence[str]] = None,
                 threads: Optional[int] = None, spinning: bool = True) -> None:
        import onnxruntime as ort
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        if not spinning:
            options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        self.session = ort.InferenceSession(
            path, options, providers=list(providers or ['CPUExecutionProvider']))
        self.meta = read_metadata(self.session.get_modelmeta())
        self.output_names = [o.name for o in self.session.get_outputs()]
        # fixed (int) or free (str) dimensions of the input
        self.input_shape = self.session.get_inputs()[0].shape

    def preprocess(self, images: Sequence[np.ndarray]
                   ) -> Tuple[np.ndarray, List[Tuple[int, int]]]:
        """RGB images (H, W, 3), any of uint8/float, → the padded batch
        (B, 3, H', W') float32 and each image's (H, W). Images go to the
        top left; the rest is the colour that normalises to the PyTorch
        preprocessor's padding value (the mean colour for 0), up to a
        multiple of the model's size divisor of the largest image, or to
        the graph's fixed size."""
        shapes = [tuple(int(s) for s in im.shape[:2]) for im in images]
        div = int(self.meta['size_divisor'])
        h = -(-max(s[0] for s in shapes) // div) * div
        w = -(-max(s[1] for s in shapes) // div) * div
        fixed_h, fixed_w = self.input_shape[2], self.input_shape[3]
        if isinstance(fixed_h, int) and isinstance(fixed_w, int):
            if h > fixed_h or w > fixed_w:
                raise ValueError(f'images of up to {h}x{w} do not fit the graph\'s '
                                 f'fixed input {fixed_h}x{fixed_w}; export with '
                                 '--dynamic')
            h, w = fixed_h, fixed_w
        fill = np.asarray(self.meta['pad_value_rgb'], dtype=np.float32)
        batch = np.empty((len(images), 3, h, w), dtype=np.float32)
        batch[:] = fill[None, :, None, None]
        for i, im in enumerate(images):
            batch[i, :, :im.shape[0], :im.shape[1]] = np.transpose(im, (2, 0, 1))
        return batch, shapes

    def __call__(self, batch: np.ndarray) -> Dict[str, np.ndarray]:
        """The graph's outputs by name for a (B, 3, H, W) RGB batch."""
        fixed_b = self.input_shape[0]
        if isinstance(fixed_b, int) and fixed_b != len(batch):
            raise ValueError(f'the graph was exported for batch {fixed_b}, got '
                             f'{len(batch)}; export with --dynamic')
        outs = self.session.run(None, {'image': batch.astype(np.float32, copy=False)})
        return dict(zip(self.output_names, outs))

    def results(self, outputs: Dict[str, np.ndarray], i: int,
                img_shape: Tuple[int, int], ori_shape: Optional[Tuple[int, int]] = None,
                tasks: Optional[Sequence[str]] = None) -> Dict[str, object]:
        """Fused results of image ``i`` of a batch (see
        :func:`~m2f_mm.deploy.postprocess.postprocess`); ``tasks`` default to
        the ones the model's config switches on."""
        meta = self.meta
        pad_shape = tuple(4 * s for s in outputs['mask_logits'].shape[-2:])
        return postprocess(
            outputs['cls_logits'][i], outputs['mask_logits'][i],
            meta['num_classes'], meta['num_things'],
            tasks=tasks or meta['results'], pad_shape=pad_shape,
            img_shape=img_shape, ori_shape=ori_shape,
            object_mask_thr=meta['object_mask_thr'], iou_thr=meta['iou_thr'],
            filter_low_score=meta['filter_low_score'],
            max_per_image=meta['max_per_image'],
            host=meta['host'])
