from .instance_postprocess import maskdino_instance_postprocess
from .maskdino_fusion_head import MaskDINOFusionHead
from .segment_postprocess import (class_probabilities, maskdino_panoptic_postprocess,
                                  maskdino_semantic_postprocess, panoptic_keep_scores)

__all__ = [
    'MaskDINOFusionHead', 'maskdino_instance_postprocess', 'class_probabilities',
    'maskdino_panoptic_postprocess', 'maskdino_semantic_postprocess', 'panoptic_keep_scores'
]
