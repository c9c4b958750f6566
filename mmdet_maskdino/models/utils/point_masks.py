"""Mask logits where the criterion needs them, without (bs, nq, H/4, W/4) maps (pure functions).

A mask logit is the dot product of a query's mask embedding with the pixel embedding, and bilinear
point sampling is linear, so ``point_sample(q . E, p) = q . point_sample(E, p)``: the logits of all
queries at shared points cost one sampling of ``E`` and one matrix product.
"""
from typing import List

import torch
from mmcv.ops import point_sample
from torch import Tensor


def point_mask_logits(mask_embeds: Tensor, mask_features: Tensor, points: Tensor) -> Tensor:
    """Mask logits of every query at points shared by all queries of one image.

    Args:
        mask_embeds (Tensor): (nq, mask_dims) mask embeddings of one image's queries.
        mask_features (Tensor): (mask_dims, h, w) that image's pixel embedding.
        points (Tensor): (num_points, 2) normalised (x, y) in [0, 1] of the map.

    Returns:
        Tensor: (nq, num_points), equal to bilinear ``point_sample`` (``align_corners=False``,
        zero padding) of the full mask logits.
    """
    sampled = point_sample(mask_features[None], points[None], align_corners=False)[0]
    return mask_embeds @ sampled


def matched_mask_logits(mask_embeds: Tensor, mask_features: Tensor,
                        indices: List[Tensor]) -> Tensor:
    """Full-resolution mask logits of the matched queries only.

    Args:
        mask_embeds (Tensor): (bs, nq, mask_dims).
        mask_features (Tensor): (bs, mask_dims, h, w).
        indices (list[Tensor]): Per image, (2, m_b) long ``(query index, gt index)``.

    Returns:
        Tensor: (sum m_b, h, w), images in batch order, pairs in the order of ``indices``.
    """
    h, w = mask_features.shape[-2:]
    maps = [mask_embeds[b, idx[0]] @ mask_features[b].flatten(1) for b, idx in enumerate(indices)]
    if not maps:
        return mask_features.new_zeros((0, h, w))
    return torch.cat(maps).view(-1, h, w)
