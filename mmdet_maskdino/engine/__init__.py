from .runner import CheckedRunner

__all__ = ['CheckedRunner']
