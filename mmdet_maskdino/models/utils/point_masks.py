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


def sample_masks(masks: Tensor, index: Tensor, points: Tensor) -> Tensor:
    """Bilinear values of ``masks[index[m]]`` at ``points[m]``, without gathering the masks.

    The same numbers as ``point_sample(masks[index][:, None].float(), points)`` (``grid_sample``
    with ``align_corners=False`` and zero padding, up to float rounding of the pixel coordinates),
    but only the four corner pixels of each point are read: no (m, H, W) copy of full-resolution
    masks is made, and ``masks`` may be bool.

    Args:
        masks (Tensor): (n, H, W) masks (bool, integer or float).
        index (Tensor): (m,) long, which mask each row of ``points`` samples.
        points (Tensor): (m, num_points, 2) normalised (x, y) in [0, 1].

    Returns:
        Tensor: (m, num_points) float32.
    """
    h, w = masks.shape[-2:]
    grid = points.float() * 2 - 1  # grid_sample's frame, then its unnormalisation
    x = ((grid[..., 0] + 1) * w - 1) / 2
    y = ((grid[..., 1] + 1) * h - 1) / 2
    x0, y0 = x.floor(), y.floor()
    rows = index[:, None]
    out = torch.zeros(points.shape[:-1], device=points.device)
    for dx in (0, 1):
        wx = (x - x0) if dx else (x0 + 1 - x)
        xi = x0 + dx
        for dy in (0, 1):
            wy = (y - y0) if dy else (y0 + 1 - y)
            yi = y0 + dy
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            value = masks[rows, yi.clamp(0, h - 1).long(), xi.clamp(0, w - 1).long()]
            out += value.float() * (wx * wy * inside)
    return out
