"""Checkpoints that survive a kill, and resumed runs that continue exactly where they stopped.

MMEngine's :class:`~mmengine.hooks.CheckpointHook` deletes the oldest checkpoint *before* writing the
new one and writes ``last_checkpoint`` right after; a kill during the write leaves a truncated file, the
previous one gone, and ``last_checkpoint`` naming the broken file. MMEngine also does not save the
random number generators, so a resumed Mask DINO run draws other denoising noise and other points than
an uninterrupted one.

:class:`SafeCheckpointHook` writes each checkpoint to a temporary file in the same folder, flushes it to
disk and renames it into place (atomic on POSIX), then updates ``last_checkpoint`` the same way, and only
then removes checkpoints beyond ``max_keep_ckpts``. It saves the Python, NumPy, torch (and CUDA) RNG
states of every rank in the checkpoint and restores them on resume at the point where the uninterrupted
run stood: right before the first new batch is loaded (iteration-based loops skip the trained batches
first) or at the start of the next epoch. Validation is made RNG-neutral (states saved before and
restored after), so training does not depend on when it is validated.

:func:`find_resumable_checkpoint` picks the newest *complete* checkpoint of a work dir for
``--resume`` without a path (used by :class:`~mmdet_maskdino.engine.CheckedRunner`).
"""
import glob
import os
import os.path as osp
import random
import re
import zipfile
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size, is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log

from mmdet.registry import HOOKS

__all__ = ['SafeCheckpointHook', 'find_resumable_checkpoint', 'rng_state', 'set_rng_state']

RNG_KEY = 'rng_states'


def rng_state() -> Dict[str, Any]:
    """This process's Python, NumPy, torch (and CUDA) generator states."""
    state = dict(python=random.getstate(), numpy=np.random.get_state(),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(_as_python_state(state['python']))
    np.random.set_state(tuple(state['numpy']))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def _as_python_state(state: Any) -> tuple:
    """``random.getstate()`` comes back from a checkpoint with lists for tuples."""
    version, internal, gauss = state
    return version, tuple(internal), gauss


class _RestoreBeforeBatch:
    """Wraps a train-loop iterator: restores ``states`` right before batch number ``skip + 1``."""

    def __init__(self, iterator: Any, skip: int, state: Dict[str, Any]) -> None:
        self.iterator, self.remaining, self.state = iterator, skip, state

    def __iter__(self) -> '_RestoreBeforeBatch':
        return self

    def __next__(self) -> Any:
        if self.state is not None and self.remaining == 0:
            set_rng_state(self.state)
            self.state = None
        self.remaining -= 1
        return next(self.iterator)

    def __getattr__(self, name: str) -> Any:  # e.g. ``_dataloader``
        return getattr(self.iterator, name)


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """:class:`~mmengine.hooks.CheckpointHook` with atomic writes and saved random states.

    Same arguments as MMEngine's hook. Atomic writes need a local ``out_dir``; with another file
    backend the hook saves as MMEngine does (RNG states are still saved and restored).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._pending_state: Optional[Dict[str, Any]] = None
        self._val_state: Optional[Dict[str, Any]] = None
        self._gathered: Optional[List[Dict[str, Any]]] = None

    # ------------------------------------------------------------------ saving
    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
        # every rank is here; ``runner.save_checkpoint`` (and its hooks) run on rank 0 only
        self._gathered = all_gather_object(rng_state()) if get_world_size() > 1 else None
        try:
            self._save_atomically(runner, step, meta)
        finally:
            self._gathered = None

    def _save_atomically(self, runner, step: int, meta: dict) -> None:
        if not isinstance(self.file_backend, LocalBackend):
            return super()._save_checkpoint_with_step(runner, step, meta)
        filename = self.filename_tmpl.format(step)
        final = osp.join(self.out_dir, filename)
        tmp_name = f'.{filename}.tmp'
        self.last_ckpt = final
        runner.message_hub.update_info('last_ckpt', final)
        drop: List[int] = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            while len(self.keep_ckpt_ids) >= self.max_keep_ckpts:  # (a deque with maxlen)
                drop.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        runner.save_checkpoint(self.out_dir, tmp_name, self.file_client_args,
                               save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler, meta=meta,
                               by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        _replace_durably(osp.join(self.out_dir, tmp_name), final)
        _write_durably(osp.join(runner.work_dir, 'last_checkpoint'), final)
        for old in drop:  # only now that the new checkpoint is complete
            path = osp.join(self.out_dir, self.filename_tmpl.format(old))
            if osp.isfile(path):
                os.remove(path)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Add every rank's RNG states (one list entry per rank; gathered before the save, which
        runs on rank 0 only). A best-checkpoint save in a multi-rank run has none to add."""
        if self._gathered is not None:
            checkpoint[RNG_KEY] = self._gathered
        elif get_world_size() == 1:
            checkpoint[RNG_KEY] = [rng_state()]

    # ------------------------------------------------------------------ resuming
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep this rank's saved states; they are applied when training continues."""
        states = checkpoint.get(RNG_KEY)
        if states is None:
            print_log('the checkpoint has no RNG states (written by another hook): the resumed '
                      'run draws other random numbers than an uninterrupted one', logger='current',
                      level=30)
            return
        if len(states) != get_world_size():
            print_log(f'the checkpoint holds RNG states of {len(states)} ranks, this run has '
                      f'{get_world_size()}: random states not restored', logger='current', level=30)
            return
        self._pending_state = states[get_rank()]

    def before_train(self, runner) -> None:
        super().before_train(runner)
        loop = runner.train_loop
        if self._pending_state is not None and hasattr(loop, 'dataloader_iterator'):
            # iteration-based: the loop first skips the batches already trained on
            loop.dataloader_iterator = _RestoreBeforeBatch(loop.dataloader_iterator, loop.iter,
                                                           self._pending_state)
            self._pending_state = None

    def before_train_epoch(self, runner) -> None:
        if self._pending_state is not None:  # epoch-based: resumed at an epoch boundary
            set_rng_state(self._pending_state)
            self._pending_state = None

    def before_val(self, runner) -> None:
        self._val_state = rng_state()

    def after_val(self, runner) -> None:
        if self._val_state is not None:
            set_rng_state(self._val_state)
            self._val_state = None


def _replace_durably(src: str, dst: str) -> None:
    """Flush ``src`` to disk and rename it to ``dst`` (atomic on POSIX), then sync the folder."""
    with open(src, 'rb') as f:
        os.fsync(f.fileno())
    os.replace(src, dst)
    _sync_dir(osp.dirname(dst))


def _write_durably(path: str, text: str) -> None:
    tmp = osp.join(osp.dirname(path), f'.{osp.basename(path)}.tmp')
    with open(tmp, 'w') as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _sync_dir(osp.dirname(path))


def _sync_dir(folder: str) -> None:
    try:
        fd = os.open(folder or '.', os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- finding what to resume
def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be resumed from (missing, not a torch zip, truncated, bad CRC), or None."""
    if not osp.isfile(path):
        return 'missing'
    if not zipfile.is_zipfile(path):
        return 'truncated or not a torch checkpoint'
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        return f'unreadable ({err})'
    return None if bad is None else f'corrupt record {bad}'


def _step_of(path: str) -> Tuple[int, float]:
    numbers = re.findall(r'\d+', osp.basename(path))
    return (int(numbers[-1]) if numbers else -1, osp.getmtime(path))


def find_resumable_checkpoint(work_dir: str) -> Tuple[Optional[str], List[str]]:
    """The newest complete checkpoint of ``work_dir`` and what was skipped on the way.

    ``last_checkpoint`` is tried first, then every ``*.pth`` of the folder from the highest step down.

    Returns:
        tuple: ``(path or None, ['<path>: <reason>', ...])``.
    """
    candidates = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            candidates.append(f.read().strip())
    found = sorted(glob.glob(osp.join(work_dir, '*.pth')), key=_step_of, reverse=True)
    candidates += [p for p in found if p not in candidates]
    skipped = []
    for path in candidates:
        problem = checkpoint_problem(path)
        if problem is None:
            return path, skipped
        skipped.append(f'{path}: {problem}')
    return None, skipped
