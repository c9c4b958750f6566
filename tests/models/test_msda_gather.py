"""The CPU deformable attention (one weighted gather) against mmcv's PyTorch path and module."""
import pytest
import torch
from mmcv.ops import MultiScaleDeformableAttention
from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch

from mmdet_maskdino.models.layers.fp32_deform_attn import Fp32MultiScaleDeformableAttention
from mmdet_maskdino.models.layers.msda_gather import (multi_scale_deformable_attn_export,
                                                      multi_scale_deformable_attn_gather)


def _inputs(bs, shapes, num_queries, heads, points, channels, outside, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = torch.tensor(shapes)
    start = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    levels = len(shapes)
    value = torch.randn(bs, int(shapes.prod(1).sum()), heads, channels, generator=gen)
    # locations in [-outside, 1 + outside]: corners beyond every border of every level
    loc = torch.rand(bs, num_queries, heads, levels, points, 2, generator=gen)
    loc = loc * (1 + 2 * outside) - outside
    attn = torch.rand(bs, num_queries, heads, levels, points, generator=gen)
    attn = attn.flatten(-2).softmax(-1).view_as(attn)
    return value, shapes, start, loc, attn


@pytest.mark.parametrize('bs,shapes,num_queries,heads,points,channels,outside', [
    (2, [(3, 5), (7, 4), (1, 1)], 9, 3, 2, 5, 0.2),               # odd sizes, a 1x1 level
    (1, [(16, 24), (8, 12), (4, 6), (2, 3)], 40, 8, 4, 32, 0.05),  # fixture C's levels
    (3, [(13, 11)], 17, 1, 1, 7, 0.5),                             # one level, one head/point
    (2, [(5, 4), (2, 3)], 11, 2, 3, 4, 3.0),  # far outside: corners clamped into the zero border
])
def test_forward_and_backward_equal_mmcv(bs, shapes, num_queries, heads, points, channels,
                                         outside):
    value, shapes, start, loc, attn = _inputs(bs, shapes, num_queries, heads, points, channels,
                                              outside)
    grads, outputs = [], []
    for fn in (lambda v, l, a: multi_scale_deformable_attn_pytorch(v, shapes, l, a),
               lambda v, l, a: multi_scale_deformable_attn_gather(v, shapes, start, l, a)):
        inputs = [t.clone().requires_grad_() for t in (value, loc, attn)]
        out = fn(*inputs)
        out.backward(torch.linspace(-1, 1, out.numel()).view_as(out))
        outputs.append(out.detach())
        grads.append([t.grad for t in inputs])
    assert outputs[1].shape == (bs, num_queries, heads * channels)
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-5, rtol=1e-5)
    for ours, ref, name in zip(grads[1], grads[0], ('value', 'locations', 'attention')):
        torch.testing.assert_close(ours, ref, atol=1e-5 * ref.abs().max().item(), rtol=1e-4,
                                   msg=lambda m: f'{name}: {m}')


@pytest.mark.parametrize('bs,shapes,num_queries,heads,points,channels,outside', [
    (2, [(3, 5), (7, 4), (1, 1)], 9, 3, 2, 5, 0.2),
    (1, [(16, 24), (8, 12), (4, 6), (2, 3)], 40, 8, 4, 32, 0.05),
    (2, [(5, 4), (2, 3)], 11, 2, 3, 4, 3.0),
])
def test_export_formulation_equals_mmcv(bs, shapes, num_queries, heads, points, channels,
                                        outside):
    """The ONNX export's Gather + MatMul formulation: mmcv's numbers, borders and far-outside
    corners included."""
    value, shapes, _, loc, attn = _inputs(bs, shapes, num_queries, heads, points, channels,
                                          outside)
    ours = multi_scale_deformable_attn_export(value, shapes, [tuple(s) for s in shapes.tolist()],
                                              loc, attn)
    ref = multi_scale_deformable_attn_pytorch(value, shapes, loc, attn)
    assert ours.shape == (bs, num_queries, heads * channels)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('ref_dims', [2, 4])
@pytest.mark.parametrize('batch_first', [True, False])
def test_module_equals_mmcv_module(ref_dims, batch_first):
    torch.manual_seed(0)
    kwargs = dict(embed_dims=32, num_heads=4, num_levels=2, num_points=3, dropout=0.0,
                  batch_first=batch_first)
    ours, ref = Fp32MultiScaleDeformableAttention(**kwargs), MultiScaleDeformableAttention(**kwargs)
    ours.init_weights()
    for p in ours.parameters():  # off the init's symmetric pattern
        p.data += torch.randn_like(p) * 0.1
    ref.load_state_dict(ours.state_dict())
    shapes = torch.tensor([[6, 5], [3, 3]])
    start = torch.tensor([0, 30])
    bs, nq = 2, 7
    query = torch.randn(bs, nq, 32)
    value = torch.randn(bs, 39, 32)
    pos = torch.randn(bs, nq, 32)
    points = torch.rand(bs, nq, 2, ref_dims)
    mask = torch.zeros(bs, 39, dtype=torch.bool)
    mask[1, -4:] = True
    if not batch_first:
        query, value, pos = query.transpose(0, 1), value.transpose(0, 1), pos.transpose(0, 1)
    args = dict(query=query, value=value, query_pos=pos, key_padding_mask=mask,
                reference_points=points, spatial_shapes=shapes, level_start_index=start)
    torch.testing.assert_close(ours(**args), ref(**args), atol=1e-5, rtol=1e-5)
