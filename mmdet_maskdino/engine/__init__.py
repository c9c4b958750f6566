from .checkpoint import SafeCheckpointHook, find_resumable_checkpoint
from .runner import CheckedRunner

__all__ = ['CheckedRunner', 'SafeCheckpointHook', 'find_resumable_checkpoint']
