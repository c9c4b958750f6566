"""The cost accounting of a training step, against hand-worked counts."""
import pytest
import torch
from mmcv.ops import MultiScaleDeformableAttention
from torch import nn

from mmdet_maskdino.benchmarks.cost import (REST, coarse_group, count_step, default_groups,
                                            merged, peak_live_bytes)

N, IN, HIDDEN, OUT, PROJ = 5, 8, 16, 4, 3


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(IN, HIDDEN), nn.Sigmoid())
        self.decoder = nn.Linear(HIDDEN, OUT)

    def forward(self, x):
        return self.decoder(self.backbone(x))


def test_flops_and_saved_bytes_land_on_the_group_that_creates_them():
    torch.manual_seed(0)
    model = Tiny()
    x = torch.randn(N, IN)  # no gradient: the backbone's input gradient is never computed
    proj = torch.randn(OUT, PROJ)  # a constant used outside every group

    cost = count_step(model, lambda: (model(x) @ proj).sum())

    assert default_groups(model) == ['backbone', 'decoder']
    assert cost.forward_flop == {'backbone': 2 * N * IN * HIDDEN,
                                 'decoder': 2 * N * HIDDEN * OUT,
                                 REST: 2 * N * OUT * PROJ}
    assert cost.backward_flop == {
        'backbone': 2 * N * IN * HIDDEN,  # weight gradient only
        'decoder': 2 * (2 * N * HIDDEN * OUT),  # input and weight gradients
        REST: 2 * N * OUT * PROJ,  # the gradient of model(x) only (proj is a constant)
    }
    f4 = 4  # bytes per float32
    assert cost.saved_bytes == {
        'backbone': N * IN * f4 + N * HIDDEN * f4,  # x (for the weight grad), sigmoid's output
        'decoder': 0.0,  # its input is sigmoid's output: the same storage, counted once
        REST: OUT * PROJ * f4,  # proj, for the gradient of model(x)
    }
    assert cost.num_params == IN * HIDDEN + HIDDEN + HIDDEN * OUT + OUT
    assert cost.msda_samples == {}
    assert all(p.grad is None for p in model.parameters())


def test_deformable_attention_samples_from_the_call_shapes():
    torch.manual_seed(0)
    bs, nq, dims, heads, levels, points = 2, 7, 32, 4, 2, 3
    shapes = torch.tensor([[6, 5], [3, 3]])
    starts = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])

    class Host(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = MultiScaleDeformableAttention(
                embed_dims=dims, num_heads=heads, num_levels=levels, num_points=points,
                batch_first=True)

        def forward(self, query, value):
            return self.encoder(query=query, value=value, reference_points=ref,
                                spatial_shapes=shapes, level_start_index=starts)

    host = Host()
    ref = torch.rand(bs, nq, levels, 2)
    query, value = torch.randn(bs, nq, dims), torch.randn(bs, int(shapes.prod(1).sum()), dims)
    cost = count_step(host, lambda: host(query, value).sum(), groups=['encoder'])
    assert cost.msda_samples == {'encoder': bs * nq * heads * levels * points}
    assert cost.msda_channels == {'encoder': dims // heads}
    # its projections: value, sampling offsets, attention weights, output
    linear = 2 * bs * (value.shape[1] * dims * dims + nq * dims * heads * levels * points * 2 +
                       nq * dims * heads * levels * points + nq * dims * dims)
    assert cost.forward_flop['encoder'] == linear


def test_merged_sums_renamed_groups_and_coarse_labels():
    torch.manual_seed(0)
    model = Tiny()
    x = torch.randn(N, IN)
    cost = count_step(model, lambda: model(x).sum())
    both = merged(cost, {'backbone': 'all', 'decoder': 'all'})
    assert both.forward_flop == {'all': cost.forward_flop['backbone'] +
                                 cost.forward_flop['decoder'], REST: 0.0}
    assert both.total('backward_flop') == cost.total('backward_flop')
    assert [coarse_group(g) for g in (
        'backbone', 'panoptic_head.pixel_decoder.encoder', 'panoptic_head.pixel_decoder',
        'panoptic_head.criterion', 'panoptic_head.loss_mask', REST, 'panoptic_head.decoder',
        'panoptic_head')] == [
        'backbone', 'encoder', 'pixel decoder (other)', 'losses and matching',
        'losses and matching', 'losses and matching', 'decoder and heads', 'decoder and heads']


@pytest.mark.parametrize('keep', [True, False])
def test_peak_live_bytes_of_known_allocations(keep):
    kept = []

    def step():
        big = torch.ones(1000, 1000)  # 4e6 B, freed below
        small = torch.ones(500, 500)  # 1e6 B, alive while big is
        if keep:
            kept.append(small)
        del big, small

    peak, final = peak_live_bytes(step)
    assert peak == pytest.approx(5e6, rel=0.01)
    assert final == pytest.approx(1e6 if keep else 0.0, abs=1e4)
