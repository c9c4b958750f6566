"""mmdet-maskdino: Mask DINO as an MMDetection 3.x plugin.

Importing this package (``custom_imports = dict(imports=['mmdet_maskdino'])``) registers every module into
MMDetection's registries and allow-lists MMEngine's own checkpoint types for torch's weights-only loading
(see :mod:`mmdet_maskdino.utils.checkpoint_compat`), so ``--resume`` works on torch >= 2.6.
"""
from . import datasets  # noqa: F401  (registers CheckedCocoDataset)
from . import deployment  # noqa: F401  (registers ONNXRuntimeMaskDINO; onnxruntime imported lazily)
from .engine import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .utils import register_mmengine_safe_globals
from .version import __version__

register_mmengine_safe_globals()

__all__ = ['__version__']
