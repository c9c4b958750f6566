"""Export to ONNX and inference with ONNX Runtime (``pip install .[deploy]``)."""
from .onnx import MaskDINOExportModule, ONNXRuntimeMaskDINO, export_onnx
from .parity import instance_agreement
from .quantize import Int8Report, calibration_inputs, quantize_int8, weight_products

__all__ = ['MaskDINOExportModule', 'ONNXRuntimeMaskDINO', 'export_onnx', 'quantize_int8',
           'Int8Report', 'weight_products', 'calibration_inputs', 'instance_agreement']
