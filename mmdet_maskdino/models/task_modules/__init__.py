from .match_costs import ThingBoxCost

__all__ = ['ThingBoxCost']
