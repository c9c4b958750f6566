"""Make MMEngine 0.10.x checkpoints load under torch >= 2.6.

torch 2.6 switched ``torch.load`` to ``weights_only=True`` by default. MMEngine 0.10.x calls
``torch.load(filename, map_location=...)`` without that argument, and its checkpoints pickle a
``MessageHub`` state (``HistoryBuffer`` objects holding numpy arrays and numpy scalars). Resuming then
fails with ``UnpicklingError: Weights only load failed``.

The fix here is deliberately narrow: safe (weights-only) loading stays ON for every file, and we add to
torch's allow-list exactly the types that MMEngine itself writes into its checkpoints -- MMEngine's
``HistoryBuffer`` and the numpy array/scalar reconstruction helpers. Arbitrary classes in a foreign
checkpoint are still refused by torch. Nothing is monkey-patched.
"""
from typing import Any, List

import numpy as np
import torch


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
    """Every non-tensor type MMEngine 0.10.x pickles into a training checkpoint."""
    from mmengine.logging.history_buffer import HistoryBuffer
    return [HistoryBuffer, *_numpy_globals()]


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
