"""Make MMEngine 0.10.x checkpoints resume under torch >= 2.6.

torch 2.6 switched ``torch.load`` to ``weights_only=True`` by default. MMEngine 0.10.x calls
``torch.load(filename, map_location=...)`` without that argument, and its training checkpoints pickle
more than tensors: the ``MessageHub`` state (``HistoryBuffer`` objects holding numpy arrays and scalars,
and ``HistoryBuffer``'s statistics methods, pickled as ``getattr(HistoryBuffer, 'mean')``) and the
schedulers' ``collections.Counter`` milestones. Resuming then fails with ``Weights only load failed``.

The fix is deliberately narrow. Safe (weights-only) loading stays ON for every file; we only add to
torch's allow-list the types MMEngine itself writes:

* ``HistoryBuffer`` (read as :class:`CheckedHistoryBuffer`, see below), ``collections.Counter``, and
  numpy's array/scalar reconstruction helpers;
* for the ``getattr`` global, NOT the builtin (which would open every attribute of every allowed object
  to a malicious file) but :func:`history_buffer_method`, which only returns public methods of
  ``HistoryBuffer`` and refuses anything else.

``HistoryBuffer.__setstate__`` updates the *class-level* table of statistics methods
(``HistoryBuffer._statistics_methods``, shared by every buffer of the process) with the table stored in
the checkpoint; a crafted file could map ``'mean'`` to ``HistoryBuffer.max`` and silently change every
logged and checkpoint-selected statistic. The allow-list therefore maps the name ``HistoryBuffer`` to
:class:`CheckedHistoryBuffer`, which accepts a stored table only when it equals the process's own
entries, and then turns back into a plain ``HistoryBuffer``.

Nothing is monkey-patched; a foreign class in a checkpoint is still refused by torch.
"""
import collections
import pickle
from typing import Any, List

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer


def history_buffer_method(owner: Any, name: str) -> Any:
    """Stand-in for ``getattr`` during weights-only unpickling: ``HistoryBuffer``'s methods only.

    Args:
        owner: The object whose attribute the pickle asks for; must be MMEngine's ``HistoryBuffer``.
        name (str): A public method name of ``HistoryBuffer`` (``'mean'``, ``'min'``, ...).

    Raises:
        pickle.UnpicklingError: For any other object or attribute.
    """
    known_owner = owner in (HistoryBuffer, CheckedHistoryBuffer)
    attr = vars(HistoryBuffer).get(name) if known_owner else None
    if isinstance(name, str) and not name.startswith('_') and callable(attr):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({owner!r}, {name!r}) in a weights-only checkpoint: only public methods '
        'of mmengine HistoryBuffer are allowed')


class CheckedHistoryBuffer(HistoryBuffer):
    """What a checkpoint's ``HistoryBuffer`` is rebuilt as: its state, never the class's statistics table.

    Only used while unpickling: ``__setstate__`` checks that every stored ``statistics_methods`` entry is
    the very function the process already has under that name, restores the buffer's own state, and
    makes the object a plain :class:`HistoryBuffer` again.
    """

    def __setstate__(self, state: dict) -> None:
        stored = state.pop('statistics_methods', {})
        self._set_default_statistics()
        for name, method in stored.items():
            if HistoryBuffer._statistics_methods.get(name) is not method:
                raise pickle.UnpicklingError(
                    f'refusing a checkpoint that changes HistoryBuffer statistics {name!r} to '
                    f'{method!r}: the statistics table is shared by the whole process')
        self.__dict__.update(state)
        self.__class__ = HistoryBuffer


def _numpy_globals() -> List[Any]:
    """The numpy callables/classes torch's weights-only unpickler needs for arrays and scalars."""
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore
    dtype_classes = [type(np.dtype(t)) for t in
                     ('float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64',
                      'uint8', 'uint16', 'uint32', 'uint64', 'bool')]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtype_classes]


def mmengine_safe_globals() -> List[Any]:
    """Every non-tensor global MMEngine 0.10.x pickles into a training checkpoint."""
    return [
        (CheckedHistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
        collections.Counter, *_numpy_globals(),
        # protocol 2 (torch.save's default) names the builtin `__builtin__.getattr`
        (history_buffer_method, '__builtin__.getattr'),
        (history_buffer_method, 'builtins.getattr'),
    ]


def register_mmengine_safe_globals() -> bool:
    """Allow-list MMEngine's own checkpoint types for ``torch.load(weights_only=True)``.

    Returns:
        bool: ``True`` if registered, ``False`` on a torch without ``add_safe_globals`` (< 2.4), where
        ``torch.load`` does not default to weights-only loading and nothing needs fixing.
    """
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:
        return False
    add_safe_globals(mmengine_safe_globals())
    return True
