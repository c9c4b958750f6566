from .checkpoint import SafeCheckpointHook, find_resumable_checkpoint
from .optim_wrapper import CPUCapableAmpOptimWrapper, accelerator_available
from .runner import CheckedRunner

__all__ = ['CheckedRunner', 'SafeCheckpointHook', 'find_resumable_checkpoint',
           'CPUCapableAmpOptimWrapper', 'accelerator_available']
