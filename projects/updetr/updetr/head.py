"""Patch queries for Mask DINO's decoder and the pretext's objective."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from mmdet.models.layers.transformer.utils import MLP
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet_maskdino.models import MaskDINOCriterion, MaskDINOHead
from mmdet_maskdino.models.dense_heads.maskdino_head import InitialQueries
from mmdet_maskdino.models.layers.query_selection import gather_tokens
from mmdet_maskdino.models.utils import (HeadOutputs, PredictionSets, SegTargets,
                                         gen_encoder_output_proposals)
from .losses import feature_reconstruction_loss
from .selection import patch_token_logits, patch_token_positives, token_retrieval_loss


def group_attention_mask(num_groups: int, group_size: int,
                         device: Optional[torch.device] = None) -> Tensor:
    """Self-attention mask that keeps query groups apart (UP-DETR's attention mask).

    Args:
        num_groups (int): Groups (one per query patch).
        group_size (int): Queries per group (consecutive).

    Returns:
        Tensor: (num_groups * group_size,) * 2 bool, True where attention is blocked (query ``i``
        may attend to ``j`` only when they are in the same group).
    """
    group = torch.arange(num_groups * group_size, device=device) // group_size
    return group[:, None] != group[None, :]


@MODELS.register_module()
class UPDETRHead(MaskDINOHead):
    """Mask DINO's head with UP-DETR's patch queries in place of query selection.

    The decoder's ``num_queries`` matching queries are learnable content vectors and learnable
    anchor boxes (the head's one-stage ``query_feat`` / ``query_embed``), split into
    ``num_patches`` consecutive groups; group ``k``'s content gets the projected feature of patch
    ``k`` added (each query's patch feature zeroed with probability ``feature_drop`` in training,
    UP-DETR's ``mask_ratio``), and a self-attention mask keeps the groups apart. This is an
    override of :meth:`MaskDINOHead.initial_queries`, the head's hook for where its queries come
    from; the encoder, decoder, box / class / mask heads are Mask DINO's, so they transfer to
    fine-tuning (``pretrained_transformer_state``).

    Args:
        num_patches (int): Query patches per image (UP-DETR: 10); ``num_queries`` must be a
            multiple of it.
        patch_feat_dims (int): Channels of the frozen backbone's last stage (512 for ResNet-18,
            2048 for ResNet-50).
        feature_drop (float): Probability of zeroing a query's patch feature in training.
        **kwargs: :class:`MaskDINOHead` arguments (``two_stage`` = :attr:`selects_tokens` and
            ``box_init='no'`` are set here).
    """

    #: the base head's ``two_stage`` (query selection's ``memory_trans_*`` layers, or learnable
    #: ``query_feat`` / ``query_embed``)
    selects_tokens = False

    def __init__(self, *, num_patches: int = 10, patch_feat_dims: int = 2048,
                 feature_drop: float = 0.1, **kwargs) -> None:
        kwargs.update(two_stage=self.selects_tokens, box_init='no')
        super().__init__(**kwargs)
        if self.num_queries % num_patches:
            raise ValueError(f'num_queries ({self.num_queries}) must be a multiple of '
                             f'num_patches ({num_patches})')
        self.num_patches = num_patches
        self.group_size = self.num_queries // num_patches
        self.feature_drop = feature_drop
        self.patch_proj = nn.Linear(patch_feat_dims, self.embed_dims)

    def initial_queries(self, memory: Tensor, level_shapes: Sequence[Tuple[int, int]],
                        mask_features: Tensor, patch_feats: Optional[Tensor] = None,
                        **kwargs) -> InitialQueries:
        """Learnable queries plus each group's projected patch feature.

        Args:
            patch_feats (Tensor): (bs, num_patches, patch_feat_dims) pooled patch features.
        """
        patches = self.project_patches(patch_feats, memory.size(0))
        content = self.query_feat.weight[None] + self.group_content(patches)
        anchors = self.query_embed.weight[None].expand(memory.size(0), -1, -1)
        return InitialQueries(content, anchors, None, self.group_mask(memory.device))

    def project_patches(self, patch_feats: Optional[Tensor], bs: int) -> Tensor:
        """(bs, num_patches, embed_dims) projected patch features (shapes checked)."""
        if patch_feats is None:
            raise ValueError('UPDETRHead needs patch_feats (the query patches\' features)')
        if patch_feats.shape[:2] != (bs, self.num_patches):
            raise ValueError(f'patch_feats {tuple(patch_feats.shape)}: expected ({bs}, '
                             f'{self.num_patches}, D)')
        return self.patch_proj(patch_feats)

    def group_content(self, patches: Tensor) -> Tensor:
        """(bs, num_queries, embed_dims): patch ``k``'s feature on every query of group ``k``,
        zeroed per query with probability ``feature_drop`` in training."""
        added = patches.repeat_interleave(self.group_size, 1)
        if self.training and self.feature_drop > 0:
            keep = torch.rand(*added.shape[:2], 1, device=added.device) >= self.feature_drop
            added = added * keep
        return added

    def group_mask(self, device: torch.device) -> Tensor:
        """The self-attention mask of the query groups (:func:`group_attention_mask`)."""
        return group_attention_mask(self.num_patches, self.group_size, device)

    def loss(self, x: Sequence[Tensor], batch_data_samples: SampleList,
             patch_feats: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Forward with the patch queries, then the pretext's losses."""
        targets = self.get_targets(batch_data_samples)
        outputs = self(x, patch_feats=patch_feats)
        return self.criterion(outputs, targets, None, patch_feats=patch_feats)


@MODELS.register_module()
class UPDETRSelectionHead(UPDETRHead):
    """UP-DETR's patch queries with anchors from *patch-conditioned query selection*.

    With learnable anchors (:class:`UPDETRHead`, UP-DETR's DETR setting) a group's queries start at
    the same boxes in every image, and Mask DINO's deformable cross-attention only samples around
    them, so a group cannot search the image for its patch. Here, as in Mask DINO's own query
    selection, the anchors come from the encoder: every token (``output_memory``, with its
    proposal) is scored against each patch (:func:`patch_token_logits`, the projected patch
    feature through ``patch_key``), and group ``k`` starts from patch ``k``'s top
    ``group_size`` tokens: their proposals refined by the box head (detached, as in Mask DINO),
    content = the token (detached) + the patch feature (with ``feature_drop``). The selected
    tokens are also an ``interm`` prediction set (supervised like Mask DINO's), and the scores
    go to the criterion as ``aux`` for :class:`UPDETRCriterion`'s token retrieval loss.
    Query selection's ``memory_trans_*`` layers are trained here, so they transfer too.

    Args:
        **kwargs: :class:`UPDETRHead` arguments.
    """
    selects_tokens = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.patch_key = nn.Linear(self.embed_dims, self.embed_dims)

    def initial_queries(self, memory: Tensor, level_shapes: Sequence[Tuple[int, int]],
                        mask_features: Tensor, patch_feats: Optional[Tensor] = None,
                        **kwargs) -> InitialQueries:
        """Each patch's top tokens as its group's queries (group-major order).

        Args:
            patch_feats (Tensor): (bs, num_patches, patch_feat_dims) pooled patch features.

        Returns:
            InitialQueries: with ``aux``: ``token_logits`` (bs, num_patches, num_tokens),
            ``token_centres`` (bs, num_tokens, 2) normalised proposal centres, ``token_valid``
            (bs, num_tokens) bool.
        """
        patches = self.project_patches(patch_feats, memory.size(0))
        output_memory, proposals = gen_encoder_output_proposals(memory, None, level_shapes)
        output_memory = self.memory_trans_norm(self.memory_trans_fc(output_memory))
        valid = torch.isfinite(proposals).all(-1)
        logits = patch_token_logits(output_memory, self.patch_key(patches), valid)
        index = logits.topk(self.group_size, -1)[1].flatten(1)  # (bs, num_queries)
        tokens = gather_tokens(output_memory, index)
        ref_unsig = self.reg_branch(tokens) + gather_tokens(proposals, index)
        interm = self._heads(tokens[None], ref_unsig.sigmoid()[None])
        content = tokens.detach() + self.group_content(patches)
        aux = dict(token_logits=logits, token_centres=proposals[..., :2].sigmoid(),
                   token_valid=valid)
        return InitialQueries(content, ref_unsig.detach(), interm,
                              self.group_mask(memory.device), aux)


@MODELS.register_module()
class UPDETRCriterion(MaskDINOCriterion):
    """Mask DINO's criterion (Hungarian matching with class + box (+ mask) costs, focal class,
    L1 + GIoU box and optionally point-sampled mask losses) plus UP-DETR's feature
    reconstruction on every prediction set: the matched query's normed state, through
    ``reconstruction`` (an MLP to the patch feature size), should point where its patch's
    feature points (:func:`feature_reconstruction_loss`).

    Args:
        patch_feat_dims (int): Size of the patch features.
        embed_dims (int): Size of the decoder's queries.
        loss_rec_weight (float): Weight of the reconstruction loss (UP-DETR: 1).
        loss_token_weight (float): Weight of the token retrieval loss (``loss_token``) of
            :class:`UPDETRSelectionHead`'s patch-to-token scores.
        **kwargs: :class:`MaskDINOCriterion` arguments.
    """

    def __init__(self, *, patch_feat_dims: int = 2048, embed_dims: int = 256,
                 loss_rec_weight: float = 1.0, loss_token_weight: float = 1.0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.reconstruction = MLP(embed_dims, embed_dims, patch_feat_dims, 2)
        self.loss_rec_weight = loss_rec_weight
        self.loss_token_weight = loss_token_weight

    def forward(self, outputs: HeadOutputs, targets: List[SegTargets], dn=None,
                patch_feats: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Mask DINO's losses of every set plus ``loss_rec`` (``d{i}.loss_rec`` per layer,
        ``interm.loss_rec`` for selected tokens), and ``loss_token`` when the head selected its
        tokens by patch (``outputs.aux``).

        Args:
            patch_feats (Tensor): (bs, num_patches, patch_feat_dims) the reconstruction targets.
        """
        if dn is not None:
            raise ValueError('the pretext has no denoising queries')
        losses = super().forward(outputs, targets, None, patch_feats=patch_feats)
        if outputs.aux is not None:
            losses['loss_token'] = self.loss_token_weight * self._token_loss(outputs.aux, targets)
        return losses

    def _token_loss(self, aux: Dict[str, Tensor], targets: List[SegTargets]) -> Tensor:
        positives = [
            patch_token_positives(centres, valid, t.norm_cxcywh)
            for centres, valid, t in zip(aux['token_centres'], aux['token_valid'], targets)
        ]
        return token_retrieval_loss(aux['token_logits'], positives,
                                    self.num_gt(targets, aux['token_logits']))

    def loss_by_feat_single(self, preds: PredictionSets, mask_features: Tensor,
                            targets: List[SegTargets], indices: List[Tensor], num_gt: float,
                            patch_feats: Optional[Tensor] = None,
                            **kwargs) -> Dict[str, Tensor]:
        """Mask DINO's losses of one set (``kwargs``: those of
        :meth:`MaskDINOCriterion.loss_by_feat_single`) and ``loss_rec`` of its matched queries."""
        losses = super().loss_by_feat_single(preds, mask_features, targets, indices, num_gt,
                                             **kwargs)
        losses['loss_rec'] = self.loss_rec_weight * self._reconstruction_loss(
            preds.query_states[0], patch_feats, indices, num_gt)
        return losses

    def _reconstruction_loss(self, states: Tensor, patch_feats: Tensor, indices: List[Tensor],
                             num_gt: float) -> Tensor:
        batch = torch.cat([torch.full_like(idx[0], b) for b, idx in enumerate(indices)])
        query = torch.cat([idx[0] for idx in indices])
        patch = torch.cat([idx[1] for idx in indices])
        if query.numel() == 0:
            return states.sum() * 0
        pred = self.reconstruction(states[batch, query])
        return feature_reconstruction_loss(pred, patch_feats[batch, patch].detach(), num_gt)
