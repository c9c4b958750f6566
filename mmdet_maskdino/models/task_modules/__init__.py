from .hybrid_matcher import DEFAULT_ASSIGNER, HybridMatcher
from .match_costs import MaskDINOGIoUCost, PointMaskBCECost, ThingBoxCost

__all__ = ['ThingBoxCost', 'PointMaskBCECost', 'MaskDINOGIoUCost', 'HybridMatcher',
           'DEFAULT_ASSIGNER']
