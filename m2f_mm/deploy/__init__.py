"""Deployment: ONNX export with standard operators, onnxruntime inference
and numpy post-processing (see README, "Export to ONNX")."""
from .onnx_export import (Mask2FormerOnnx, build_model_from_config,
                          compare_with_pytorch, default_task, export_onnx,
                          non_standard_domains, read_metadata)
from .postprocess import postprocess

__all__ = ['Mask2FormerOnnx', 'build_model_from_config', 'compare_with_pytorch',
           'default_task', 'export_onnx', 'non_standard_domains', 'postprocess',
           'read_metadata']
