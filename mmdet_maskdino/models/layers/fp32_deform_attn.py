"""Deformable attention kept in fp32 under AMP (as upstream's ``custom_fwd(cast_inputs=float32)``),
and the encoder built on it."""
import torch
from mmcv.ops import MultiScaleDeformableAttention
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mmdet.models.layers.transformer import DeformableDetrTransformerEncoder


def _fp32(x):
    return x.float() if isinstance(x, Tensor) and x.is_floating_point() else x


class Fp32MultiScaleDeformableAttention(MultiScaleDeformableAttention):
    """mmcv's ``MultiScaleDeformableAttention`` that always computes in float32.

    Under autocast, mmcv feeds fp16 sampling locations to its kernel; small offsets on large maps
    lose precision. This subclass disables autocast around the whole module and casts its floating
    inputs to float32; the output is float32 (autocast re-casts downstream). Same parameters and
    state-dict keys as the parent.
    """

    def forward(self, *args, **kwargs) -> Tensor:
        device_type = next(a for a in list(args) + list(kwargs.values())
                           if isinstance(a, Tensor)).device.type
        with torch.autocast(device_type=device_type, enabled=False):
            return super().forward(*[_fp32(a) for a in args],
                                   **{k: _fp32(v) for k, v in kwargs.items()})


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
        reference_points = self.get_encoder_reference_points(spatial_shapes, valid_ratios,
                                                             device=query.device)
        for layer in self.layers:
            query = run_layer(layer, self.with_cp and self.training, query=query,
                              query_pos=query_pos, key_padding_mask=key_padding_mask,
                              spatial_shapes=spatial_shapes, level_start_index=level_start_index,
                              valid_ratios=valid_ratios, reference_points=reference_points,
                              **kwargs)
        return query
