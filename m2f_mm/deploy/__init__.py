"""Deployment: the model from a config and checkpoint (:mod:`.from_config`),
ONNX export with standard operators (:mod:`.onnx_export`),
onnxruntime inference (:mod:`.runtime`) and the numpy post-processing
(:func:`m2f_mm.deploy.postprocess.postprocess`); see the README, "Export to
ONNX"."""
from .from_config import build_model_from_config, default_task
from .onnx_export import (Mask2FormerOnnx, compare_with_pytorch, export_onnx,
                          non_standard_domains, read_metadata)

__all__ = ['Mask2FormerOnnx', 'build_model_from_config', 'compare_with_pytorch',
           'default_task', 'export_onnx', 'non_standard_domains', 'read_metadata']
