"""check_cuda.py's CPU side: inputs, the comparison machinery and the AMP step report; the tool
itself says so and exits 0 without a GPU."""
import math

import pytest
import torch
from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch

from mmdet_maskdino.benchmarks.cuda_check import (ODD_LEVELS, compare_losses, differences,
                                                  forward_and_grads, loss_step, msda_inputs)
from mmdet_maskdino.models.layers.msda_gather import multi_scale_deformable_attn_gather
from mmdet_maskdino.testing import build_small_maskdino, make_det_batch, run_tool


def test_msda_inputs_are_odd_sized_and_valid():
    x = msda_inputs(bs=2, num_queries=5, num_heads=3, head_dims=4, num_points=2)
    areas = [h * w for h, w in ODD_LEVELS]
    assert x['value'].shape == (2, sum(areas), 3, 4)
    assert x['level_start_index'].tolist() == [0, areas[0], areas[0] + areas[1],
                                               sum(areas[:3])]
    assert x['sampling_locations'].shape == (2, 5, 3, 4, 2, 2)
    loc = x['sampling_locations']
    assert loc.min() < 0 and loc.max() > 1 and loc.min() >= -0.1 and loc.max() <= 1.1
    sums = x['attention_weights'].flatten(3).sum(-1)
    torch.testing.assert_close(sums, torch.ones_like(sums))


def test_cpu_gather_equals_mmcv_reference_through_the_comparison():
    """The same machinery check_cuda runs against mmcv's CUDA kernel, here between the plugin's
    CPU gather and mmcv's PyTorch path (both fp64): forward and every gradient agree."""
    inputs = msda_inputs(num_queries=11, num_heads=2, head_dims=8)

    def mmcv_path(value, shapes, start, locations, weights):
        return multi_scale_deformable_attn_pytorch(value, shapes, locations, weights)
    ours = forward_and_grads(multi_scale_deformable_attn_gather, inputs, 'cpu', torch.float64)
    ref = forward_and_grads(mmcv_path, inputs, 'cpu', torch.float64)
    rows = differences(ours, ref)
    assert [r['item'] for r in rows] == ['output', 'grad value', 'grad sampling_locations',
                                        'grad attention_weights']
    assert all(r['finite'] and r['rel_to_max'] < 1e-10 for r in rows), rows
    # fp32 against the fp64 reference: float rounding, not zero
    fp32 = differences(forward_and_grads(multi_scale_deformable_attn_gather, inputs, 'cpu',
                                         torch.float32), ref)
    assert all(0 < r['rel_to_max'] < 1e-5 for r in fp32), fp32


def test_differences_and_loss_comparison_by_hand():
    rows = differences({'a': torch.tensor([1.0, 2.5])}, {'a': torch.tensor([1.0, 2.0])})
    assert rows == [dict(item='a', max_abs=0.5, rel_to_max=0.25, finite=True)]
    c = compare_losses({'loss_a': 1.1, 'loss_b': 2.0, 'grad_norm': 3.0},
                       {'loss_a': 1.0, 'loss_b': 2.0, 'grad_norm': 2.0})
    assert c['total_rel'] == pytest.approx(0.1 / 3) and c['worst_term'] == 'loss_a'
    assert c['worst_rel'] == pytest.approx(0.1) and c['grad_norm_rel'] == pytest.approx(0.5)
    assert c['finite'] and not compare_losses({'loss_a': math.nan, 'grad_norm': 1.0},
                                              {'loss_a': 1.0, 'grad_norm': 1.0})['finite']


def test_amp_step_report_on_the_cpu():
    import numpy as np
    torch.manual_seed(0)
    model = build_small_maskdino().train()
    mask = np.zeros((64, 64), bool)
    mask[8:40, 10:30] = True
    batch = make_det_batch(model, [[mask]], [[1]])
    fp32 = loss_step(model, batch, 'cpu')
    again = loss_step(model, batch, 'cpu')
    assert fp32 == again  # seeded draws: the same step twice
    bf16 = compare_losses(loss_step(model, batch, 'cpu', torch.bfloat16), fp32)
    assert bf16['finite'] and bf16['total_rel'] < 2e-2 and fp32['grad_norm'] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the no-GPU answer')
def test_tool_without_gpu_says_so_and_exits_0():
    proc = run_tool(['tools/analysis_tools/check_cuda.py'])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'no CUDA device' in proc.stdout
