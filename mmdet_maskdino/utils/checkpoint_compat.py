"""Make MMEngine 0.10.x checkpoints resume under torch >= 2.6.

torch 2.6 switched ``torch.load`` to ``weights_only=True`` by default. MMEngine 0.10.x calls
``torch.load(filename, map_location=...)`` without that argument, and its training checkpoints pickle
more than tensors: the ``MessageHub`` state (``HistoryBuffer`` objects holding numpy arrays and scalars,
and ``HistoryBuffer``'s statistics methods, pickled as ``getattr(HistoryBuffer, 'mean')``) and the
schedulers' ``collections.Counter`` milestones. Resuming then fails with ``Weights only load failed``.

The fix is deliberately narrow. Safe (weights-only) loading stays ON for every file; we only add to
torch's allow-list the types MMEngine itself writes:

* ``HistoryBuffer``, ``collections.Counter``, and numpy's array/scalar reconstruction helpers;
* for the ``getattr`` global, NOT the builtin (which would open every attribute of every allowed object
  to a malicious file) but :func:`history_buffer_method`, which only returns public methods of
  ``HistoryBuffer`` and refuses anything else.

Nothing is monkey-patched; a foreign class in a checkpoint is still refused by torch.
"""
import collections
from typing import Any, List

import numpy as np
import torch


def history_buffer_method(owner: Any, name: str) -> Any:
    """Stand-in for ``getattr`` during weights-only unpickling: ``HistoryBuffer``'s methods only.

    Args:
        owner: The object whose attribute the pickle asks for; must be MMEngine's ``HistoryBuffer``.
        name (str): A public method name of ``HistoryBuffer`` (``'mean'``, ``'min'``, ...).

    Raises:
        pickle.UnpicklingError: For any other object or attribute.
    """
    import pickle

    from mmengine.logging.history_buffer import HistoryBuffer
    attr = vars(HistoryBuffer).get(name) if owner is HistoryBuffer else None
    if isinstance(name, str) and not name.startswith('_') and callable(attr):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({owner!r}, {name!r}) in a weights-only checkpoint: only public methods '
        'of mmengine HistoryBuffer are allowed')


def _numpy_globals() -> List[Any]:
    """The numpy callables/classes torch's weights-only unpickler needs for arrays and scalars."""
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore
    dtype_classes = [type(np.dtype(t)) for t in
                     ('float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64',
                      'uint8', 'bool')]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtype_classes]


def mmengine_safe_globals() -> List[Any]:
    """Every non-tensor global MMEngine 0.10.x pickles into a training checkpoint."""
    from mmengine.logging.history_buffer import HistoryBuffer
    return [
        HistoryBuffer, collections.Counter, *_numpy_globals(),
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
