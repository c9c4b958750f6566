"""Multi-scale deformable attention on the CPU as one weighted gather.

mmcv's PyTorch path samples each level with ``grid_sample`` on a (bs * heads, C, H, W) copy of the
values, stacks the (bs * heads, C, num_queries, levels * points) samples, multiplies them by the
attention weights and sums: several full-size intermediates per layer, the stack kept for the
backward pass. Here every output row is a weighted sum of value rows -- the four bilinear corners
of every sampling point, each weighted by ``attention weight x bilinear weight`` -- which is
``F.embedding_bag(mode='sum', per_sample_weights=...)`` over the channels-last values: one gather
of contiguous rows.

Zero padding (``grid_sample``'s ``padding_mode='zeros'``) is a border of two zero pixels around
every level of the gathered table: corner coordinates are clamped to ``[-2, size]``, so a corner
outside its level reads a zero row and no per-corner "inside" test or mask is computed (nor, in
the backward pass, needed: the gradient of a weight on a zero row is zero). The backward pass is
written out (:class:`_DeformableGather`): only the padded table and the inputs are kept, the
corners are recomputed, the table gradient is scattered slice by slice, and the location /
attention gradients follow from the bilinear weights' derivatives.
"""
from typing import List, NamedTuple, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

#: zero pixels around every level of the padded table; corners are clamped to [-PAD, size]
PAD = 2


class _Taps(NamedTuple):
    """The four bilinear corners ("taps") of every sampling point.

    Corner ``(dy, dx)`` of a point reads table row ``first + offsets[2 * dy + dx]`` with weight
    ``wy[dy] * wx[dx]``.

    Attributes:
        first (Tensor): (bs, nq, heads, L, P) int32 row of the padded table of the (y0, x0) corner.
        offsets (list[Tensor]): 4 (L, 1) int32 row offsets of the corners (y0 x0, y0 x1, y1 x0,
            y1 x1).
        wx (tuple[Tensor]): bilinear weights of the x0 / x1 corners, each (bs, nq, heads, L, P).
        wy (tuple[Tensor]): of the y0 / y1 corners.
        w, h (Tensor): (L, 1) level sizes (pixel = location x size - 0.5).
    """
    first: Tensor
    offsets: List[Tensor]
    wx: Tuple[Tensor, Tensor]
    wy: Tuple[Tensor, Tensor]
    w: Tensor
    h: Tensor

    def corners(self):
        """Yield ``(index, wy, wx, dy, dx)`` of the four corners."""
        for dy in (0, 1):
            for dx in (0, 1):
                yield self.first + self.offsets[2 * dy + dx], self.wy[dy], self.wx[dx], dy, dx


def pad_levels(value: Tensor, spatial_shapes: Tensor) -> Tuple[Tensor, Tensor]:
    """Each level of ``value`` with a border of ``PAD`` zero pixels.

    Args:
        value (Tensor): (bs, num_value, heads, C) levels concatenated row-major.
        spatial_shapes (Tensor): (L, 2) ``(h, w)``.

    Returns:
        tuple: the padded table (bs, num_padded, heads, C) and (L,) the first padded token of
        every level.
    """
    bs, _, heads, channels = value.shape
    shapes = spatial_shapes.tolist()
    levels = value.split([h * w for h, w in shapes], 1)
    padded = [F.pad(v.reshape(bs, h, w, heads * channels), (0, 0, PAD, PAD, PAD, PAD)).flatten(1, 2)
              for v, (h, w) in zip(levels, shapes)]
    sizes = (spatial_shapes + 2 * PAD).prod(1)
    start = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    return torch.cat(padded, 1).view(bs, -1, heads, channels), start


def unpad_levels(table: Tensor, spatial_shapes: Tensor) -> Tensor:
    """Inverse of :func:`pad_levels` (drops the border): (bs, num_padded, heads, C) ->
    (bs, num_value, heads, C)."""
    bs, _, heads, channels = table.shape
    padded = (spatial_shapes + 2 * PAD).tolist()
    levels = table.split([h * w for h, w in padded], 1)
    out = [v.view(bs, h, w, heads, channels)[:, PAD:h - PAD, PAD:w - PAD].flatten(1, 2)
           for v, (h, w) in zip(levels, padded)]
    return torch.cat(out, 1)


def _taps(num_padded: int, spatial_shapes: Tensor, padded_start: Tensor,
          locations: Tensor) -> _Taps:
    """Rows and bilinear weights of ``grid_sample(align_corners=False)``'s corners."""
    bs, _, heads, levels = locations.shape[:4]
    h = spatial_shapes[:, 0].view(levels, 1).to(locations.dtype)
    w = spatial_shapes[:, 1].view(levels, 1).to(locations.dtype)
    x = locations[..., 0] * w - 0.5
    y = locations[..., 1] * h - 0.5
    x0, y0 = x.floor(), y.floor()
    fx, fy = x.sub_(x0), y.sub_(y0)
    # far-outside corners: clamped into the zero border (both corners stay in it)
    col = torch.minimum(x0.clamp_(min=-PAD), w).int()
    row = torch.minimum(y0.clamp_(min=-PAD), h).int()
    padded_w = (spatial_shapes[:, 1] + 2 * PAD).view(levels, 1).int()
    # row of (b, level, row + PAD, col + PAD, head): ((b * num_padded + start + ...) * heads + head)
    level_base = padded_start.view(levels, 1).int() + PAD * padded_w + PAD
    batch_head = (torch.arange(bs, device=x.device, dtype=torch.int32).view(bs, 1, 1, 1, 1) *
                  num_padded * heads +
                  torch.arange(heads, device=x.device, dtype=torch.int32).view(1, 1, heads, 1, 1))
    first = row.mul_(padded_w).add_(col).add_(level_base).mul_(heads).add_(batch_head)
    offsets = [torch.zeros_like(padded_w), torch.full_like(padded_w, heads), padded_w * heads,
               (padded_w + 1) * heads]
    return _Taps(first, offsets, (1 - fx, fx), (1 - fy, fy), w, h)


class _DeformableGather(torch.autograd.Function):
    """Weighted gather of value rows; see :func:`multi_scale_deformable_attn_gather`."""

    @staticmethod
    def forward(ctx, value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                locations: Tensor, attention: Tensor) -> Tensor:
        table, padded_start = pad_levels(value, spatial_shapes)
        taps = _taps(table.size(1), spatial_shapes, padded_start, locations)
        rows = attention.numel() // attention.shape[-2:].numel()
        flat_table = table.view(-1, table.size(-1))
        out = None
        for index, wy, wx, _, _ in taps.corners():  # one bag of L * P rows per output row
            part = F.embedding_bag(index.view(rows, -1), flat_table,
                                   per_sample_weights=(attention * wy * wx).view(rows, -1),
                                   mode='sum')
            out = part if out is None else out.add_(part)
        ctx.save_for_backward(table, spatial_shapes, padded_start, locations, attention)
        return out.view(value.size(0), -1, value.size(2) * value.size(3))

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        table, spatial_shapes, padded_start, locations, attention = ctx.saved_tensors
        taps = _taps(table.size(1), spatial_shapes, padded_start, locations)
        channels = table.size(-1)
        flat_table = table.view(-1, channels)
        grad_rows = grad_out.reshape(-1, channels)  # (bs * nq * heads, C)
        num_taps = attention.shape[-2:].numel()  # L * P per corner
        grad_table = torch.zeros_like(flat_table) if ctx.needs_input_grad[0] else None
        grad_attention = torch.zeros_like(attention)
        grad_x, grad_y = torch.zeros_like(attention), torch.zeros_like(attention)
        gathered, weighted = torch.empty_like(grad_rows), torch.empty_like(grad_rows)  # buffers
        for index, wy, wx, dy, dx in taps.corners():
            bilinear = wy * wx
            # (tap, row) layouts: every slice k below is contiguous
            index = index.view(-1, num_taps).t().to(torch.long,
                                                    memory_format=torch.contiguous_format)
            weight = (attention * bilinear).view(-1, num_taps).t().contiguous()
            # d out_r / d weight_rk = <grad_r, table row index_rk> (zero on the border rows)
            grad_weight = torch.empty_like(weight)
            for k in range(num_taps):
                torch.index_select(flat_table, 0, index[k], out=gathered)
                torch.sum(gathered.mul_(grad_rows), -1, out=grad_weight[k])
                if grad_table is not None:
                    torch.mul(grad_rows, weight[k, :, None], out=weighted)
                    grad_table.index_add_(0, index[k], weighted)
            grad_weight = grad_weight.t().reshape(attention.shape)
            grad_attention += grad_weight * bilinear
            common = grad_weight * attention
            # d w(x0) / dx = -1, d w(x1) / dx = +1 (pixels)
            grad_x += common * wy if dx else -(common * wy)
            grad_y += common * wx if dy else -(common * wx)
        grad_locations = torch.stack([grad_x * taps.w, grad_y * taps.h], -1)
        grad_value = None
        if grad_table is not None:
            grad_value = unpad_levels(grad_table.view_as(table), spatial_shapes)
        return grad_value, None, None, grad_locations, grad_attention


def multi_scale_deformable_attn_gather(value: Tensor, spatial_shapes: Tensor,
                                       level_start_index: Tensor, sampling_locations: Tensor,
                                       attention_weights: Tensor) -> Tensor:
    """The output of multi-scale deformable attention (before the output projection).

    Same contract and numbers (up to float rounding) as mmcv's
    ``multi_scale_deformable_attn_pytorch``: bilinear sampling with ``align_corners=False`` and
    zero padding outside each level, gradients for ``value``, ``sampling_locations`` and
    ``attention_weights``.

    Args:
        value (Tensor): (bs, num_value, num_heads, C) values of all levels, concatenated
            row-major in the order of ``spatial_shapes``.
        spatial_shapes (Tensor): (num_levels, 2) long ``(h, w)`` of each level.
        level_start_index (Tensor): (num_levels,) long first token of each level (implied by
            ``spatial_shapes``; kept for mmcv's signature).
        sampling_locations (Tensor): (bs, num_queries, num_heads, num_levels, num_points, 2)
            normalised (x, y) in [0, 1] of each level.
        attention_weights (Tensor): (bs, num_queries, num_heads, num_levels, num_points).

    Returns:
        Tensor: (bs, num_queries, num_heads * C).
    """
    return _DeformableGather.apply(value.contiguous(), spatial_shapes, level_start_index,
                                   sampling_locations.contiguous(), attention_weights.contiguous())


def multi_scale_deformable_attn_export(value: Tensor, spatial_shapes: Tensor,
                                       level_shapes: Sequence[Tuple[int, int]],
                                       sampling_locations: Tensor,
                                       attention_weights: Tensor) -> Tensor:
    """:func:`multi_scale_deformable_attn_gather` in standard ONNX ops, for export.

    The same zero-bordered table and corner rows, traced with symbolic level sizes: per corner,
    one ONNX ``Gather`` of the ``levels x points`` value rows of every (query, head) and one batched
    ``MatMul`` with their weights (``attention x bilinear``), summed over the four corners. No
    ``GridSample``, no per-level split of the sampled values, and no custom op.

    Args:
        value (Tensor): (bs, num_value, num_heads, C).
        spatial_shapes (Tensor): (num_levels, 2) long ``(h, w)`` (symbolic when traced).
        level_shapes (list[tuple]): The same sizes read off the maps (for the per-level padding;
            see :func:`~mmdet_maskdino.models.utils.level_shapes`).
        sampling_locations (Tensor): (bs, num_queries, num_heads, num_levels, num_points, 2).
        attention_weights (Tensor): (bs, num_queries, num_heads, num_levels, num_points).

    Returns:
        Tensor: (bs, num_queries, num_heads * C).
    """
    bs, _, heads, channels = value.shape
    _, num_queries, _, levels, points, _ = sampling_locations.shape
    # table (bs, heads, padded tokens, C) as rows: a (query, head) reads its head's block
    padded = [F.pad(v.reshape(bs, h, w, heads * channels), (0, 0, PAD, PAD, PAD, PAD))
              .reshape(bs, -1, heads, channels)
              for v, (h, w) in zip(value.split([h * w for h, w in level_shapes], 1),
                                   level_shapes)]
    table = torch.cat(padded, 1).transpose(1, 2).reshape(-1, channels)
    sizes = (spatial_shapes + 2 * PAD).prod(1)
    num_padded = sizes.sum()
    base = (sizes.cumsum(0) - sizes).view(levels, 1)  # first padded token of every level
    h = spatial_shapes[:, 0].view(levels, 1)
    w = spatial_shapes[:, 1].view(levels, 1)
    x = sampling_locations[..., 0] * w.to(value.dtype) - 0.5
    y = sampling_locations[..., 1] * h.to(value.dtype) - 0.5
    x0, y0 = x.floor(), y.floor()
    fx, fy = x - x0, y - y0
    # far-outside corners: clamped into the zero border (both corners stay in it)
    col = torch.minimum(x0.clamp(min=-PAD).long(), w) + PAD
    row = torch.minimum(y0.clamp(min=-PAD).long(), h) + PAD
    padded_w = w + 2 * PAD
    block = (torch.arange(bs, device=value.device).view(bs, 1, 1, 1, 1) * heads +
             torch.arange(heads, device=value.device).view(1, 1, heads, 1, 1))
    first = (block * num_padded + base + row * padded_w + col).view(
        bs, num_queries, heads, levels * points)
    down = padded_w.expand(levels, points).reshape(-1)  # the next row, per tap
    attention = attention_weights.reshape(bs, num_queries, heads, levels * points)
    wx = (1 - fx).view_as(attention), fx.view_as(attention)
    wy = (1 - fy).view_as(attention), fy.view_as(attention)
    out = None
    for dy in (0, 1):
        for dx in (0, 1):
            index = first + dx + down if dy else first + dx
            rows = table[index]  # (bs, nq, heads, L * P, C)
            weight = (attention * wy[dy] * wx[dx]).unsqueeze(-2)  # (bs, nq, heads, 1, L * P)
            part = torch.matmul(weight, rows)
            out = part if out is None else out + part
    return out.reshape(bs, num_queries, heads * channels)
