"""Read an upstream checkpoint without executing anything it contains.

A pickle can name any importable callable and call it while it is being read (``os.system`` is two
opcodes away). The converter therefore never calls ``pickle.load`` or ``torch.load(weights_only=False)``
on a file it was handed:

* ``.pth`` (torch zip or legacy format) -> ``torch.load(weights_only=True)``: tensors, containers and
  scalars only;
* ``.pkl`` (detectron2 model-zoo format: a dict of numpy arrays under ``model``) -> :class:`ArrayUnpickler`,
  which allows numpy arrays / scalars / dtypes and ``collections.OrderedDict`` and nothing else (dicts,
  lists, tuples, strings and numbers need no global).

Anything else stops with :class:`UnsafeCheckpointError` naming the file and the forbidden global. For a
file the user trusts, ``unsafe=True`` (``--unsafe-load`` on the command line) restores full unpickling.
"""
import collections
import pickle
from typing import Any, Dict

import numpy as np
import torch

__all__ = ['ArrayUnpickler', 'UnsafeCheckpointError', 'load_upstream_checkpoint']


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The checkpoint names a global that safe loading does not allow."""


def _latin1_encode(text: str, encoding: str = 'latin1') -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes (array buffers), latin-1 only."""
    if encoding.replace('-', '').replace('_', '').lower() not in ('latin1', 'iso88591'):
        raise UnsafeCheckpointError(f'refusing _codecs.encode with encoding {encoding!r}')
    return text.encode('latin1')


def _array_globals() -> Dict[tuple, Any]:
    """``(module, name) -> object`` for what numpy's array and scalar pickles name (numpy 1 and 2)."""
    try:  # numpy >= 2
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray  # type: ignore
    allowed = {(module, name): getattr(multiarray, name)
               for module in ('numpy.core.multiarray', 'numpy._core.multiarray')
               for name in ('_reconstruct', 'scalar')}
    allowed[('numpy', 'ndarray')] = np.ndarray
    allowed[('numpy', 'dtype')] = np.dtype
    allowed[('_codecs', 'encode')] = _latin1_encode
    allowed[('collections', 'OrderedDict')] = collections.OrderedDict
    return allowed


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays, scalars and containers, and refuses every other global.

    Args:
        file: A binary file object.
        source (str): The file name, for error messages.
    """

    _ALLOWED = _array_globals()

    def __init__(self, file, source: str) -> None:
        super().__init__(file, encoding='latin1')
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f'{self.source}: refusing to load the global {module}.{name}; a detectron2 .pkl '
                'checkpoint holds only numpy arrays, dicts, lists and scalars. If you trust this '
                'file, pass --unsafe-load') from None


def load_upstream_checkpoint(path: str, unsafe: bool = False) -> Any:
    """Read a detectron2 ``.pth`` / ``.pkl`` checkpoint safely (nothing in it is executed).

    Args:
        path (str): The checkpoint file.
        unsafe (bool): Full unpickling (``pickle.load`` / ``torch.load(weights_only=False)``), which
            runs whatever code the file names. Only for files from a trusted source.

    Returns:
        The unpickled object (usually a dict with the state dict under ``model``).

    Raises:
        UnsafeCheckpointError: The file names a global that safe loading does not allow.
    """
    if path.endswith('.pkl'):
        with open(path, 'rb') as f:
            if unsafe:
                return pickle.load(f, encoding='latin1')
            return ArrayUnpickler(f, path).load()
    if unsafe:
        return torch.load(path, map_location='cpu', weights_only=False)
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f'{path}: weights-only loading refused this checkpoint ({_first_line(err)}). If you '
            'trust this file, pass --unsafe-load') from None


def _first_line(err: Exception) -> str:
    """The line of torch's weights-only error that names the global."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    named = [line for line in lines if 'global' in line.lower()]
    return (named or lines or ['unknown reason'])[0]
