from .giou import MaskDINOGIoULoss, generalized_box_iou
from .maskdino_criterion import MaskDINOCriterion

__all__ = ['MaskDINOCriterion', 'MaskDINOGIoULoss', 'generalized_box_iou']
