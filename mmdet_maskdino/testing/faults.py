"""Hooks that kill the training process at chosen moments (for the checkpoint/resume reliability tests).

``SIGKILL`` gives the process no chance to clean up, like an OOM kill or a pre-empted node. Import this
module through a config's ``custom_imports`` and add the hooks to ``custom_hooks``.
"""
import os
import signal

from mmengine.hooks import Hook

from mmdet.registry import HOOKS

__all__ = ['KillAtIterHook', 'KillDuringCheckpointWriteHook']


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class KillAtIterHook(Hook):
    """SIGKILL in the middle of iteration ``at_iter`` (0-based): its batch loaded, no update made."""

    def __init__(self, at_iter: int) -> None:
        self.at_iter = at_iter

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if runner.iter == self.at_iter:
            _kill()


class _KillOnPickle:
    """Kills the process when ``torch.save`` reaches it, i.e. while the checkpoint is serialised."""

    def __reduce__(self):
        _kill()


@HOOKS.register_module()
class KillDuringCheckpointWriteHook(Hook):
    """SIGKILL while the checkpoint of iteration ``at_iter`` (1-based, ``iter_N.pth``) is being saved.

    MMEngine serialises to memory and then writes the file; the kill comes during serialisation, after
    the checkpoint hook began saving (MMEngine's own hook has already deleted the oldest checkpoint
    by then). A write cut short is covered by ``find_resumable_checkpoint``'s truncated-file test.
    """

    priority = 'LOWEST'  # after the checkpoint hook added its own entries

    def __init__(self, at_iter: int) -> None:
        self.at_iter = at_iter

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if checkpoint['meta'].get('iter') == self.at_iter:
            checkpoint['zz_kill_during_write'] = _KillOnPickle()
