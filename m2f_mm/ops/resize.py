"""Bilinear resizing of feature maps in the training graph."""
from typing import Tuple

import torch.nn.functional as F
from torch import Tensor

from .bilinear import matrix_resize
from .dispatch import deterministic_mode, needs_grad, resize_impl


def resize_bilinear(x: Tensor, size: Tuple[int, int]) -> Tensor:
    """``F.interpolate(x, size, mode='bilinear', align_corners=False)``; as
    interpolation-matrix products where its backward would run under
    deterministic mode on CUDA (:func:`~m2f_mm.ops.dispatch.resize_impl`)."""
    if resize_impl(x.device.type, deterministic_mode(), needs_grad(x)) == 'matrix':
        return matrix_resize(x, (int(size[0]), int(size[1])))
    # ``size`` as given: a traced shape stays symbolic in ONNX export
    return F.interpolate(x, size=size, mode='bilinear', align_corners=False)
