from .instance_postprocess import maskdino_instance_postprocess
from .maskdino_fusion_head import MaskDINOFusionHead

__all__ = ['MaskDINOFusionHead', 'maskdino_instance_postprocess']
