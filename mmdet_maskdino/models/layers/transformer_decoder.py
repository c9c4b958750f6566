"""Mask DINO's transformer decoder: DINO's decoder with iterative box refinement."""
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from mmdet.models.layers.transformer import DinoTransformerDecoder
from mmdet.models.layers.transformer.utils import coordinate_to_encoding, inverse_sigmoid
from .fp32_deform_attn import Fp32MultiScaleDeformableAttention, fp32_region, run_layer


class MaskDINOTransformerDecoder(DinoTransformerDecoder):
    """DINO's decoder (self-attn -> deformable cross-attn -> FFN, post-norm) as Mask DINO runs it.

    Differences from :class:`DinoTransformerDecoder`: the inverse-sigmoid clamp is configurable
    (upstream Mask DINO uses 1e-5, mmdet's DINO 1e-3), the sine embedding of the reference box scales
    with ``embed_dims`` (``embed_dims // 2`` frequencies per coordinate), and the raw (un-normed)
    layer outputs are returned too, because the next reference is refined from them. Under mixed
    precision every layer (self-attention, deformable cross-attention, FFN, norms) computes in
    fp32 (:func:`fp32_region`, upstream's ``@autocast(enabled=False)`` on its decoder layer); the
    query-position MLP, the box head and the final norm stay under autocast, as upstream.

    Args:
        ref_eps (float): Clamp of ``inverse_sigmoid`` in the box refinement.
        with_cp (bool): Activation checkpointing: in training, each layer's activations are
            recomputed in the backward pass instead of stored (less memory, more time).
        **kwargs: :class:`DinoTransformerDecoder` arguments (``num_layers``, ``layer_cfg``, ...).
    """

    def __init__(self, *, ref_eps: float = 1e-5, with_cp: bool = False, **kwargs) -> None:
        self.ref_eps = ref_eps
        self.with_cp = with_cp
        kwargs.setdefault('post_norm_cfg', None)  # the final LayerNorm is ``self.norm``
        super().__init__(**kwargs)

    def _init_layers(self) -> None:
        super()._init_layers()
        for layer in self.layers:  # deformable cross-attention in fp32 under AMP
            layer.cross_attn = Fp32MultiScaleDeformableAttention(**layer.cross_attn_cfg)

    def forward(self, query: Tensor, value: Tensor, key_padding_mask: Optional[Tensor],
                self_attn_mask: Optional[Tensor], reference_points: Tensor, spatial_shapes: Tensor,
                level_start_index: Tensor, valid_ratios: Tensor, reg_branch: nn.Module,
                **kwargs) -> Tuple[Tensor, Tensor]:
        """Run all layers.

        Args:
            query (Tensor): (bs, num_queries, embed_dims) content queries.
            value (Tensor): (bs, num_tokens, embed_dims) encoder memory in decoder level order.
            key_padding_mask (Tensor | None): (bs, num_tokens), True at padding.
            self_attn_mask (Tensor | None): (num_queries, num_queries), True where attention is
                blocked (denoising groups).
            reference_points (Tensor): (bs, num_queries, 4) initial boxes, sigmoided normalised
                cxcywh w.r.t. the padded batch.
            spatial_shapes, level_start_index, valid_ratios: Level layout of ``value``.
            reg_branch (nn.Module): The shared box head (embed_dims -> 4 deltas).

        Returns:
            tuple: ``hidden_states`` (num_layers, bs, num_queries, embed_dims), normed outputs of every
            layer; ``references`` (num_layers + 1, bs, num_queries, 4), sigmoided input reference of
            every layer plus the last refined one.
        """
        hidden_states, references = [], [reference_points]
        num_feats = self.embed_dims // 2
        for layer in self.layers:
            ref_input = reference_points[:, :, None] * torch.cat([valid_ratios, valid_ratios],
                                                                 -1)[:, None]
            query_pos = self.ref_point_head(
                coordinate_to_encoding(ref_input[:, :, 0, :], num_feats=num_feats))
            query = fp32_region(run_layer, layer, self.with_cp and self.training, query,
                                query_pos=query_pos,
                                value=value, key_padding_mask=key_padding_mask,
                                self_attn_mask=self_attn_mask, spatial_shapes=spatial_shapes,
                                level_start_index=level_start_index, valid_ratios=valid_ratios,
                                reference_points=ref_input, **kwargs)
            new_ref = (reg_branch(query) +
                       inverse_sigmoid(reference_points, eps=self.ref_eps)).sigmoid()
            reference_points = new_ref.detach()
            hidden_states.append(self.norm(query))
            references.append(new_ref)
        return torch.stack(hidden_states), torch.stack(references)
