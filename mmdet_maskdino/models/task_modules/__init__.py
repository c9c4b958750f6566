from .hybrid_matcher import DEFAULT_ASSIGNER, HybridMatcher
from .match_costs import PointMaskBCECost, ThingBoxCost

__all__ = ['ThingBoxCost', 'PointMaskBCECost', 'HybridMatcher', 'DEFAULT_ASSIGNER']
