"""CPUCapableAmpOptimWrapper: MMEngine's AmpOptimWrapper where an accelerator exists, bf16 autocast
without loss scaling on a CPU."""
import pytest
import torch
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.registry import init_default_scope
from torch import nn

import mmdet_maskdino  # noqa: F401  (registers the wrapper)
from mmdet_maskdino.engine import CPUCapableAmpOptimWrapper, accelerator_available

cpu_only = pytest.mark.skipif(accelerator_available(), reason='checks the CPU path')


@pytest.fixture(autouse=True)
def mmdet_scope():
    init_default_scope('mmdet')  # as the runner of an mmdet config


def _wrapper(**kwargs):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    cfg = dict(type='CPUCapableAmpOptimWrapper', optimizer=dict(type='SGD', lr=0.1), **kwargs)
    return model, build_optim_wrapper(model, cfg)


@cpu_only
def test_cpu_autocasts_to_bf16_inside_optim_context():
    model, wrapper = _wrapper()
    assert isinstance(wrapper, CPUCapableAmpOptimWrapper)
    with wrapper.optim_context(model):
        assert torch.is_autocast_enabled('cpu')
        assert torch.get_autocast_dtype('cpu') == torch.bfloat16
        out = model(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
    assert not torch.is_autocast_enabled('cpu')


@cpu_only
def test_cpu_step_equals_plain_optim_wrapper():
    """No loss scaling: the same loss gives the same update as MMEngine's OptimWrapper, also
    with gradient clipping (the scaler's unscale is the identity)."""
    x = torch.randn(5, 4)
    results = []
    for cls_cfg in ('CPUCapableAmpOptimWrapper', 'OptimWrapper'):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
        wrapper = build_optim_wrapper(model, dict(type=cls_cfg, clip_grad=dict(max_norm=0.01),
                                                  optimizer=dict(type='SGD', lr=0.1)))
        wrapper.update_params(model(x).square().mean())
        results.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert isinstance(build_optim_wrapper(nn.Linear(1, 1), dict(
        type='CPUCapableAmpOptimWrapper', optimizer=dict(type='SGD', lr=0.1))), OptimWrapper)


@cpu_only
def test_cpu_state_dict_round_trip_and_fp16_refused():
    model, wrapper = _wrapper()
    wrapper.update_params(model(torch.randn(3, 4)).sum())
    state = wrapper.state_dict()
    _, other = _wrapper()
    other.load_state_dict(state)
    assert other.optimizer.state_dict()['param_groups'] == \
        wrapper.optimizer.state_dict()['param_groups']
    with pytest.raises(ValueError, match='bfloat16 only'):
        _wrapper(dtype='float16')
