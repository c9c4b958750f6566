"""Deformable attention kept in fp32 under AMP (as upstream's ``custom_fwd(cast_inputs=float32)``)."""
import torch
from mmcv.ops import MultiScaleDeformableAttention
from torch import Tensor

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


class MaskDINOTransformerEncoder(DeformableDetrTransformerEncoder):
    """Deformable DETR's encoder with fp32 deformable attention (post-norm layers, unchanged)."""

    def _init_layers(self) -> None:
        super()._init_layers()
        for layer in self.layers:
            layer.self_attn = Fp32MultiScaleDeformableAttention(**layer.self_attn_cfg)
