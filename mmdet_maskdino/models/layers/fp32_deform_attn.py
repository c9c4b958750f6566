"""fp32 regions under mixed precision: deformable attention (as upstream's
``custom_fwd(cast_inputs=float32)``), :func:`fp32_region` (upstream's ``autocast(enabled=False)``
around the pixel decoder and every decoder layer), and the encoder built on them."""
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from mmcv.ops import MultiScaleDeformableAttention
from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mmdet.models.layers.transformer import DeformableDetrTransformerEncoder
from .msda_gather import multi_scale_deformable_attn_export, multi_scale_deformable_attn_gather


def _fp32(x):
    return x.float() if isinstance(x, Tensor) and x.is_floating_point() else x


def fp32_region(fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)`` with autocast disabled and every floating tensor argument cast to
    float32: a region that computes in fp32 under mixed precision, as upstream's
    ``@autocast(enabled=False)`` around its pixel decoder and decoder layers (whose inputs are
    fp32 there). Outside autocast the casts are no-ops on fp32 inputs."""
    tensors = [a for a in list(args) + list(kwargs.values()) if isinstance(a, Tensor)]
    device_type = tensors[0].device.type if tensors else 'cpu'
    with torch.autocast(device_type=device_type, enabled=False):
        return fn(*[_fp32(a) for a in args], **{k: _fp32(v) for k, v in kwargs.items()})


class Fp32MultiScaleDeformableAttention(MultiScaleDeformableAttention):
    """mmcv's ``MultiScaleDeformableAttention`` computed in float32, with a faster CPU path.

    Under autocast, mmcv feeds fp16 sampling locations to its kernel; small offsets on large maps
    lose precision. This subclass disables autocast around the whole module and casts its floating
    inputs to float32; the output is float32 (autocast re-casts downstream). On CUDA it runs
    mmcv's forward (its CUDA kernel). On the CPU, where mmcv samples level by level with
    ``grid_sample``, the same projections feed :func:`multi_scale_deformable_attn_gather` (one
    weighted gather over all levels; same numbers up to float rounding). When traced for ONNX
    export, the same projections feed mmcv's ``grid_sample`` path (``export_impl='grid_sample'``,
    the default: ONNX ``GridSample``, opset >= 16) or :func:`multi_scale_deformable_attn_export`
    (``'gather'``: ``Gather`` + ``MatMul`` per bilinear corner), with symbolic level sizes: the
    exported graph takes any image size. Same parameters and state-dict keys as the parent.
    """

    #: how deformable attention is traced for ONNX export: 'grid_sample' or 'gather'
    export_impl: str = 'grid_sample'

    def forward(self, *args, **kwargs) -> Tensor:
        return fp32_region(self._forward_fp32, *args, **kwargs)

    def _forward_fp32(self, *args, **kwargs) -> Tensor:
        """The path for the inputs' device (inside :func:`fp32_region`)."""
        if torch.jit.is_tracing():
            return self._forward_gather(*args, export=True, **kwargs)
        first = next(a for a in list(args) + list(kwargs.values()) if isinstance(a, Tensor))
        if first.is_cuda:
            return super().forward(*args, **kwargs)
        return self._forward_gather(*args, **kwargs)

    def _forward_gather(self,
                        query: Tensor,
                        key: Optional[Tensor] = None,
                        value: Optional[Tensor] = None,
                        identity: Optional[Tensor] = None,
                        query_pos: Optional[Tensor] = None,
                        key_padding_mask: Optional[Tensor] = None,
                        reference_points: Optional[Tensor] = None,
                        spatial_shapes: Optional[Tensor] = None,
                        level_start_index: Optional[Tensor] = None,
                        level_shapes: Optional[Sequence[Tuple[int, int]]] = None,
                        export: bool = False,
                        **kwargs) -> Tensor:
        """The parent's contract (``key`` unused, as in mmcv); see its ``forward``.

        ``level_shapes`` (the ``(h, w)`` of every level as sizes, see :func:`level_shapes`) is
        required when ``export``.
        """
        value = query if value is None else value
        identity = query if identity is None else identity
        if query_pos is not None:
            query = query + query_pos
        if not self.batch_first:
            query, value = query.transpose(0, 1), value.transpose(0, 1)
        bs, num_queries, _ = query.shape
        value = self.value_proj(value)
        if key_padding_mask is not None:
            value = value.masked_fill(key_padding_mask[..., None], 0.0)
        value = value.view(bs, value.size(1), self.num_heads, -1)
        shape = (bs, num_queries, self.num_heads, self.num_levels, self.num_points)
        offsets = self.sampling_offsets(query).view(*shape, 2)
        attention = self.attention_weights(query).view(*shape[:3], -1).softmax(-1).view(shape)
        locations = sampling_locations(reference_points, offsets, spatial_shapes)
        if export:
            if level_shapes is None:
                raise ValueError('exporting deformable attention needs level_shapes (the (h, w) '
                                 'of every level read off the feature maps)')
            if self.export_impl == 'gather':
                sampled = multi_scale_deformable_attn_export(value, spatial_shapes, level_shapes,
                                                             locations, attention)
            else:
                sampled = multi_scale_deformable_attn_pytorch(value, level_shapes, locations,
                                                              attention)
        else:
            sampled = multi_scale_deformable_attn_gather(value, spatial_shapes,
                                                         level_start_index, locations, attention)
        output = self.output_proj(sampled)
        if not self.batch_first:
            output = output.transpose(0, 1)
        return self.dropout(output) + identity


def sampling_locations(reference_points: Tensor, offsets: Tensor,
                       spatial_shapes: Tensor) -> Tensor:
    """Where deformable attention samples (Deformable DETR, eq. 3).

    Args:
        reference_points (Tensor): (bs, num_queries, num_levels, 2) normalised points, or
            (..., 4) normalised cxcywh boxes.
        offsets (Tensor): (bs, num_queries, num_heads, num_levels, num_points, 2) predicted
            offsets: in pixels of each level for points; for boxes, in units of half the box
            size per ``num_points``.
        spatial_shapes (Tensor): (num_levels, 2) ``(h, w)``.

    Returns:
        Tensor: (bs, num_queries, num_heads, num_levels, num_points, 2) normalised (x, y).
    """
    bs, num_queries, num_heads, num_levels, num_points, _ = offsets.shape
    flat = offsets.reshape(bs * num_queries, num_heads, -1)  # heads x (levels * points * xy)

    def per_point(t: Tensor) -> Tensor:  # (bs, nq, L, 2) -> (bs * nq, 1, L * P * 2)
        return t[:, :, :, None].expand(-1, -1, -1, num_points, -1).reshape(bs * num_queries,
                                                                           1, -1)
    # broadcasting only over the heads (a 3-d layout): same numbers as the 6-d broadcast, faster
    if reference_points.size(-1) == 2:
        size = spatial_shapes.flip(-1).to(offsets.dtype)[:, None].expand(-1, num_points, -1)
        out = (flat / size.reshape(-1)).add_(per_point(reference_points))
    elif reference_points.size(-1) == 4:
        out = (flat / num_points * per_point(reference_points[..., 2:]) *
               0.5).add_(per_point(reference_points[..., :2]))
    else:
        raise ValueError(f'reference_points must end with 2 or 4 values, got '
                         f'{tuple(reference_points.shape)}')
    return out.view(offsets.shape)


def encoder_reference_points(level_shapes: Sequence[Tuple[int, int]],
                             valid_ratios: Tensor) -> Tensor:
    """Reference points of the encoder tokens: the centres of their cells, normalised.

    The numbers of :meth:`DeformableDetrTransformerEncoder.get_encoder_reference_points`
    (``arange(n) + 0.5`` equals its ``linspace(0.5, n - 0.5, n)``), with sizes that stay symbolic
    when traced for export.

    Args:
        level_shapes (list[tuple]): ``(h, w)`` of every level.
        valid_ratios (Tensor): (bs, num_levels, 2) valid fraction of every level (x, y).

    Returns:
        Tensor: (bs, num_tokens, num_levels, 2) normalised (x, y).
    """
    refs: List[Tensor] = []
    for lvl, (h, w) in enumerate(level_shapes):
        ref_y, ref_x = torch.meshgrid(
            torch.arange(h, device=valid_ratios.device).to(torch.float32) + 0.5,
            torch.arange(w, device=valid_ratios.device).to(torch.float32) + 0.5, indexing='ij')
        ref_y = ref_y.reshape(-1)[None] / (valid_ratios[:, None, lvl, 1] * h)
        ref_x = ref_x.reshape(-1)[None] / (valid_ratios[:, None, lvl, 0] * w)
        refs.append(torch.stack((ref_x, ref_y), -1))
    return torch.cat(refs, 1)[:, :, None] * valid_ratios[:, None]


def run_layer(layer: nn.Module, with_cp: bool, *args, **kwargs) -> Tensor:
    """``layer(*args, **kwargs)``, with activation checkpointing when ``with_cp`` and gradients
    are being recorded (activations recomputed in the backward pass instead of stored)."""
    if with_cp and torch.is_grad_enabled():
        return checkpoint(layer, *args, use_reentrant=False, **kwargs)
    return layer(*args, **kwargs)


class MaskDINOTransformerEncoder(DeformableDetrTransformerEncoder):
    """Deformable DETR's encoder with fp32 deformable attention (post-norm layers, unchanged).

    Args:
        with_cp (bool): Activation checkpointing of every layer in training (less memory, more
            time).
        **kwargs: :class:`DeformableDetrTransformerEncoder` arguments.
    """

    def __init__(self, *, with_cp: bool = False, **kwargs) -> None:
        self.with_cp = with_cp
        super().__init__(**kwargs)

    def _init_layers(self) -> None:
        super()._init_layers()
        for layer in self.layers:
            layer.self_attn = Fp32MultiScaleDeformableAttention(**layer.self_attn_cfg)

    def forward(self, query: Tensor, query_pos: Tensor, key_padding_mask: Tensor,
                spatial_shapes: Tensor, level_start_index: Tensor, valid_ratios: Tensor,
                **kwargs) -> Tensor:
        """As :meth:`DeformableDetrTransformerEncoder.forward` (``query`` (bs, num_tokens,
        embed_dims) in, encoder memory of the same shape out), checkpointing layers if asked."""
        shapes = kwargs.get('level_shapes') or [tuple(s) for s in spatial_shapes.tolist()]
        reference_points = encoder_reference_points(shapes, valid_ratios)
        for layer in self.layers:
            query = run_layer(layer, self.with_cp and self.training, query=query,
                              query_pos=query_pos, key_padding_mask=key_padding_mask,
                              spatial_shapes=spatial_shapes, level_start_index=level_start_index,
                              valid_ratios=valid_ratios, reference_points=reference_points,
                              **kwargs)
        return query
