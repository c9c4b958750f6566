"""Multi-scale deformable attention on the CPU as one weighted gather.

mmcv's PyTorch path samples each level with ``grid_sample`` on a (bs * heads, C, H, W) copy of the
values, stacks the (bs * heads, C, num_queries, levels * points) samples, multiplies them by the
attention weights and sums: several full-size intermediates per layer, the stack kept for the
backward pass. Here every output row is a weighted sum of value rows -- the four bilinear corners
of every sampling point, each weighted by ``attention weight x bilinear weight`` -- which is
``F.embedding_bag(mode='sum', per_sample_weights=...)`` over the channels-last values: one gather
of contiguous rows. The backward pass is written out (:class:`_DeformableGather`): only the inputs
are kept, the corners are recomputed, the value gradient is scattered slice by slice, and the
location / attention gradients follow from the bilinear weights' derivatives.
"""
from typing import List, NamedTuple, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


class _Corner(NamedTuple):
    """One of the four bilinear corners of every sampling point, each (bs, nq, heads, L, P)."""
    index: Tensor  # flat row of value.reshape(-1, C): ((b * num_value + token) * heads + head)
    wx: Tensor  # bilinear weight along x (>= 0)
    wy: Tensor
    sign_x: float  # d wx / d x_pixel
    sign_y: float
    inside: Tensor  # corner inside its level (zero padding outside)


def _corners(value_shape, spatial_shapes: Tensor, level_start_index: Tensor,
             locations: Tensor) -> Tuple[List[_Corner], Tensor, Tensor]:
    """The corners of ``grid_sample(align_corners=False)``; also each level's (w, h) as
    broadcastable tensors (pixel coordinate = location x size - 0.5)."""
    bs, num_value, num_heads, _ = value_shape
    num_levels = spatial_shapes.size(0)
    h = spatial_shapes[:, 0].view(1, 1, 1, num_levels, 1).to(locations.dtype)
    w = spatial_shapes[:, 1].view(1, 1, 1, num_levels, 1).to(locations.dtype)
    x = locations[..., 0] * w - 0.5
    y = locations[..., 1] * h - 0.5
    x0, y0 = x.floor(), y.floor()
    base = (torch.arange(bs, device=x.device).view(bs, 1, 1, 1, 1) * num_value +
            level_start_index.view(1, 1, 1, num_levels, 1)) * num_heads + \
        torch.arange(num_heads, device=x.device).view(1, 1, num_heads, 1, 1)
    corners = []
    for dy in (0, 1):
        yi = y0 + dy
        for dx in (0, 1):
            xi = x0 + dx
            inside = ((xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)).to(x.dtype)
            pixel = yi.clamp(min=0).minimum(h - 1) * w + xi.clamp(min=0).minimum(w - 1)
            corners.append(_Corner(base + pixel.long() * num_heads,
                                   (x - x0) if dx else (x0 + 1 - x),
                                   (y - y0) if dy else (y0 + 1 - y),
                                   1.0 if dx else -1.0, 1.0 if dy else -1.0, inside))
    return corners, w, h


class _DeformableGather(torch.autograd.Function):
    """Weighted gather of value rows; see :func:`multi_scale_deformable_attn_gather`."""

    @staticmethod
    def forward(ctx, value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                locations: Tensor, attention: Tensor) -> Tensor:
        corners, _, _ = _corners(value.shape, spatial_shapes, level_start_index, locations)
        rows = attention.numel() // attention.shape[-2:].numel()
        index = torch.stack([c.index for c in corners], -1).view(rows, -1)
        weight = torch.stack([attention * c.wx * c.wy * c.inside for c in corners], -1)
        out = F.embedding_bag(index, value.reshape(-1, value.size(-1)),
                              per_sample_weights=weight.view(rows, -1), mode='sum')
        ctx.save_for_backward(value, spatial_shapes, level_start_index, locations, attention)
        return out.view(value.size(0), -1, value.size(2) * value.size(3))

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        value, spatial_shapes, level_start_index, locations, attention = ctx.saved_tensors
        corners, w, h = _corners(value.shape, spatial_shapes, level_start_index, locations)
        channels = value.size(-1)
        table = value.reshape(-1, channels)
        grad_rows = grad_out.reshape(-1, channels)  # (bs * nq * heads, C)
        grad_value = torch.zeros_like(table) if ctx.needs_input_grad[0] else None
        grad_attention = torch.zeros_like(attention)
        grad_x, grad_y = torch.zeros_like(attention), torch.zeros_like(attention)
        gathered, weighted = torch.empty_like(grad_rows), torch.empty_like(grad_rows)  # buffers
        for c in corners:
            bilinear = c.wx * c.wy * c.inside
            # (level * point, row) layouts: every slice k below is contiguous
            index = c.index.reshape(-1, attention.shape[-2:].numel()).t().contiguous()
            weight = (attention * bilinear).reshape(index.shape[::-1]).t().contiguous()
            # d out_r / d weight_rk = <grad_r, value row index_rk>
            grad_weight = torch.empty_like(weight)
            for k in range(index.size(0)):
                torch.index_select(table, 0, index[k], out=gathered)
                torch.sum(gathered.mul_(grad_rows), -1, out=grad_weight[k])
                if grad_value is not None:
                    torch.mul(grad_rows, weight[k, :, None], out=weighted)
                    grad_value.index_add_(0, index[k], weighted)
            grad_weight = grad_weight.t().reshape(attention.shape)
            grad_attention += grad_weight * bilinear
            common = grad_weight * attention * c.inside
            grad_x += common * (c.sign_x * c.wy)
            grad_y += common * (c.sign_y * c.wx)
        grad_locations = torch.stack([grad_x * w, grad_y * h], -1)
        return (None if grad_value is None else grad_value.view_as(value), None, None,
                grad_locations, grad_attention)


def multi_scale_deformable_attn_gather(value: Tensor, spatial_shapes: Tensor,
                                       level_start_index: Tensor, sampling_locations: Tensor,
                                       attention_weights: Tensor) -> Tensor:
    """The output of multi-scale deformable attention (before the output projection).

    Same contract and numbers (up to float rounding) as mmcv's
    ``multi_scale_deformable_attn_pytorch``: bilinear sampling with ``align_corners=False`` and
    zero padding outside each level, gradients for ``value``, ``sampling_locations`` and
    ``attention_weights``.

    Args:
        value (Tensor): (bs, num_value, num_heads, C) values of all levels, concatenated.
        spatial_shapes (Tensor): (num_levels, 2) long ``(h, w)`` of each level.
        level_start_index (Tensor): (num_levels,) long first token of each level.
        sampling_locations (Tensor): (bs, num_queries, num_heads, num_levels, num_points, 2)
            normalised (x, y) in [0, 1] of each level.
        attention_weights (Tensor): (bs, num_queries, num_heads, num_levels, num_points).

    Returns:
        Tensor: (bs, num_queries, num_heads * C).
    """
    return _DeformableGather.apply(value.contiguous(), spatial_shapes, level_start_index,
                                   sampling_locations.contiguous(), attention_weights.contiguous())
