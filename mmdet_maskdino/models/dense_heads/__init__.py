from .maskdino_head import MaskDINOHead

__all__ = ['MaskDINOHead']
