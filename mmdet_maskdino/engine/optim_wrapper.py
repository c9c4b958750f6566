"""MMEngine's ``AmpOptimWrapper`` that also trains on a CPU, with bf16 autocast."""
from typing import Union

import torch
from mmengine.device import (is_cuda_available, is_mlu_available, is_musa_available,
                             is_npu_available)
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from mmdet.registry import OPTIM_WRAPPERS


def accelerator_available() -> bool:
    """Whether MMEngine's ``AmpOptimWrapper`` accepts this machine (CUDA, NPU, MLU or MUSA)."""
    return (is_cuda_available() or is_npu_available() or is_mlu_available() or
            is_musa_available())


@OPTIM_WRAPPERS.register_module()
class CPUCapableAmpOptimWrapper(AmpOptimWrapper):
    """:class:`AmpOptimWrapper` on an accelerator; bf16 autocast without loss scaling on a CPU.

    MMEngine's wrapper refuses a CPU-only machine (``AssertionError: AmpOptimizerWrapper is only
    available training on gpu, npu, mlu or musa``). On a CPU, autocast computes in bfloat16, which
    has float32's exponent range: gradients do not underflow, so no loss scaling is needed. This
    subclass then keeps everything of the parent (``optim_context`` enters MMEngine's
    ``autocast(dtype=bfloat16)``; ``backward``, ``step``, ``state_dict`` go through a disabled
    ``GradScaler``, which passes losses and steps through unchanged) and only replaces the device
    check. Mask DINO's fp32 regions (pixel decoder, decoder layers, deformable attention, matching
    and mask losses) stay fp32 inside, as on a GPU.

    Args:
        loss_scale (float | str | dict): The parent's; ignored on a CPU (a warning says so unless
            ``'dynamic'``).
        dtype (str | torch.dtype, optional): Autocast dtype. On a CPU only ``bfloat16`` (the
            default there); on an accelerator the parent's default (float16).
        use_fsdp (bool): The parent's (accelerators only).
        **kwargs: :class:`OptimWrapper` arguments.
    """

    def __init__(self,
                 loss_scale: Union[str, float, dict] = 'dynamic',
                 dtype: Union[str, torch.dtype, None] = None,
                 use_fsdp: bool = False,
                 **kwargs) -> None:
        if accelerator_available():
            super().__init__(loss_scale=loss_scale, dtype=dtype, use_fsdp=use_fsdp, **kwargs)
            return
        if dtype not in (None, 'bfloat16', torch.bfloat16):
            raise ValueError(f'CPU mixed precision trains in bfloat16 only, got dtype={dtype!r} '
                             '(no accelerator found)')
        if loss_scale != 'dynamic':
            print_log(f'loss_scale={loss_scale!r} ignored: bf16 autocast on the CPU trains '
                      'without loss scaling', logger='current')
        # The parent's __init__ only asserts an accelerator, builds a GradScaler and sets the
        # dtype; on a CPU the rest is OptimWrapper's, so it is initialised directly (explicitly,
        # rather than through the parent's device assertion).
        OptimWrapper.__init__(self, **kwargs)
        self._scale_update_param = None
        self.loss_scaler = torch.amp.GradScaler('cpu', enabled=False)  # identity scaling
        self.cast_dtype = torch.bfloat16
