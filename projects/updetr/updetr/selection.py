"""Patch-conditioned query selection: which encoder tokens a query patch's group starts from.

Mask DINO's query selection ranks encoder tokens by class score and starts the decoder from the
top-K tokens' boxes; with deformable cross-attention a query only samples the image around its
anchor, so where the anchors start matters. For the UP-DETR pretext the ranking is conditioned on
the patch: every token is scored against each patch's (projected) feature, and each patch's group
starts from its own top tokens. The scores are trained as a retrieval: tokens whose proposal
centre lies inside the patch box are the positives (:func:`token_retrieval_loss`).
"""
from typing import List

import torch
from torch import Tensor


def patch_token_logits(tokens: Tensor, patch_keys: Tensor, valid: Tensor) -> Tensor:
    """Scaled dot products of every patch with every encoder token.

    Args:
        tokens (Tensor): (bs, num_tokens, D) encoder tokens (query selection's ``output_memory``).
        patch_keys (Tensor): (bs, num_patches, D) the patches' projected features.
        valid (Tensor): (bs, num_tokens) bool, False where the token's proposal is invalid.

    Returns:
        Tensor: (bs, num_patches, num_tokens) logits, ``-inf`` at invalid tokens.
    """
    logits = torch.einsum('bpd,btd->bpt', patch_keys, tokens) / tokens.size(-1)**0.5
    return logits.masked_fill(~valid[:, None], float('-inf'))


def centres_inside(centres: Tensor, valid: Tensor, patch_boxes: Tensor) -> Tensor:
    """(num_patches, num_tokens) bool: the valid tokens whose proposal centre lies strictly inside
    each patch box (arguments as :func:`patch_token_positives`)."""
    offset = (centres[None] - patch_boxes[:, None, :2]).abs()
    return (offset < patch_boxes[:, None, 2:] / 2).all(-1) & valid[None]


def patch_token_positives(centres: Tensor, valid: Tensor, patch_boxes: Tensor) -> Tensor:
    """Tokens that belong to each patch: proposal centre inside the patch box, or, for a patch
    that contains no valid centre (a small patch between grid cells), the valid token whose
    centre is nearest to the patch centre.

    Args:
        centres (Tensor): (num_tokens, 2) normalised ``(x, y)`` proposal centres of one image.
        valid (Tensor): (num_tokens,) bool.
        patch_boxes (Tensor): (num_patches, 4) normalised cxcywh patch boxes.

    Returns:
        Tensor: (num_patches, num_tokens) bool, at least one True per patch (when any token is
        valid).
    """
    inside = centres_inside(centres, valid, patch_boxes)
    distance = (centres[None] - patch_boxes[:, None, :2]).pow(2).sum(-1)
    distance = distance.masked_fill(~valid[None], float('inf'))
    nearest = torch.zeros_like(inside).scatter_(1, distance.argmin(1, keepdim=True), True)
    return torch.where(inside.any(1, keepdim=True), inside, nearest & valid[None])


def token_retrieval_loss(logits: Tensor, positives: List[Tensor], avg_factor: float) -> Tensor:
    """Cross-entropy of picking a patch's own tokens among all tokens:
    ``sum_patches [logsumexp(all logits) - logsumexp(logits of its positives)] / avg_factor``.

    Args:
        logits (Tensor): (bs, num_patches, num_tokens) from :func:`patch_token_logits`.
        positives (list[Tensor]): Per image, (num_patches_b, num_tokens) bool, the first
            ``num_patches_b`` rows of that image's logits.
        avg_factor (float): Normaliser (the number of patches).

    Returns:
        Tensor: Scalar loss (0 with gradient when there is no patch).
    """
    total = logits.new_zeros(())
    for image_logits, pos in zip(logits, positives):
        if pos.numel() == 0:
            continue
        found = pos.any(1)  # a patch with no valid token at all has nothing to retrieve
        rows, pos = image_logits[:len(pos)][found], pos[found]
        rows_pos = rows.masked_fill(~pos, float('-inf'))
        total = total + (rows.logsumexp(-1) - rows_pos.logsumexp(-1)).sum()
    return total / avg_factor + logits.masked_fill(torch.isinf(logits), 0).sum() * 0
