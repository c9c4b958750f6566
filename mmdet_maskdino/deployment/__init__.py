"""Export to ONNX and inference with ONNX Runtime (``pip install .[deploy]``)."""
from .onnx import MaskDINOExportModule, ONNXRuntimeMaskDINO, export_onnx

__all__ = ['MaskDINOExportModule', 'ONNXRuntimeMaskDINO', 'export_onnx']
