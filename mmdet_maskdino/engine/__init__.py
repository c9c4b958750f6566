from .checkpoint import SafeCheckpointHook, find_resumable_checkpoint
from .dropped_hook import DroppedSamplesHook
from .optim_wrapper import CPUCapableAmpOptimWrapper, accelerator_available
from .runner import CheckedRunner

__all__ = ['CheckedRunner', 'DroppedSamplesHook', 'SafeCheckpointHook', 'find_resumable_checkpoint',
           'CPUCapableAmpOptimWrapper', 'accelerator_available']
