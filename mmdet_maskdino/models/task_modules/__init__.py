from .hybrid_matcher import DEFAULT_ASSIGNER, HybridMatcher
from .match_costs import ThingBoxCost

__all__ = ['ThingBoxCost', 'HybridMatcher', 'DEFAULT_ASSIGNER']
