"""Distributed start-up on CPU-only machines, and shutdown."""
import os

import torch
import torch.distributed as dist


def init_cpu_distributed(cfg) -> bool:
    """Start a gloo process group for ``--launcher pytorch`` when there is no CUDA.

    MMEngine 0.10's ``init_dist`` calls ``torch.cuda.set_device`` unconditionally, which raises on a
    CPU build of torch, and its DDP wrapper passes ``device_ids=[LOCAL_RANK]``, which CPU modules
    refuse. When the process group already exists, MMEngine's runner skips its own ``init_dist``; and a
    ``model_wrapper_cfg`` with ``device_ids=None`` makes a CPU DDP wrapper. So this makes ``torchrun
    ... --launcher pytorch`` work on a CPU (DDP over gloo). With CUDA, nothing is done.

    Args:
        cfg (Config): The run's config (``launcher`` read, ``model_wrapper_cfg`` set if absent).

    Returns:
        bool: Whether this function started the process group.
    """
    if cfg.get('launcher') != 'pytorch' or torch.cuda.is_available() or dist.is_initialized():
        return False
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None,
                                     broadcast_buffers=False,
                                     find_unused_parameters=cfg.get('find_unused_parameters',
                                                                    False))
    dist.init_process_group(backend='gloo', rank=int(os.environ['RANK']),
                            world_size=int(os.environ['WORLD_SIZE']))
    return True


def close_distributed() -> bool:
    """Destroy the default process group (and every sub-group) if one exists.

    Call it once per process at the end of a run. A process that exits with a live gloo group can
    abort while the interpreter shuts down (``terminate called without an active exception``,
    SIGABRT, after the run itself finished), because gloo's worker threads still hold work objects
    when Python is torn down; PyTorch's documentation asks for ``destroy_process_group`` at the end
    of ``main``. Works the same for NCCL groups started by MMEngine.

    Returns:
        bool: Whether a process group was destroyed.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return False
    dist.destroy_process_group()
    return True
