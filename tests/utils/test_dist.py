"""CPU process-group start-up and shutdown used by tools/train.py and tools/test.py."""
import socket

import torch.distributed as dist
from mmengine.config import Config

from mmdet_maskdino.utils import close_distributed, init_cpu_distributed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_init_then_close_single_process_group(monkeypatch):
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', str(_free_port()))
    cfg = Config(dict(launcher='pytorch'))
    assert not dist.is_initialized()
    try:
        assert init_cpu_distributed(cfg) is True
        assert dist.is_initialized() and dist.get_backend() == 'gloo'
        assert dist.get_world_size() == 1
        assert cfg.model_wrapper_cfg.device_ids is None  # CPU DDP wrapper
        assert init_cpu_distributed(cfg) is False  # an existing group is left alone
    finally:
        assert close_distributed() is True
    assert not dist.is_initialized()
    assert close_distributed() is False  # nothing left to destroy


def test_non_distributed_launcher_starts_nothing():
    cfg = Config(dict(launcher='none'))
    assert init_cpu_distributed(cfg) is False
    assert not dist.is_initialized() and 'model_wrapper_cfg' not in cfg
    assert close_distributed() is False
