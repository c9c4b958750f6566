from .maskdino_head import InitialQueries, MaskDINOHead

__all__ = ['InitialQueries', 'MaskDINOHead']
