"""Mask logits where the criterion needs them, without (bs, nq, H/4, W/4) maps (pure functions).

A mask logit is the dot product of a query's mask embedding with the pixel embedding, and bilinear
point sampling is linear, so ``point_sample(q . E, p) = q . point_sample(E, p)``: the logits of all
queries at shared points cost one sampling of ``E`` and one matrix product. Sampling here is
``grid_sample``'s bilinear rule (``align_corners=False``, zero padding) written as a gather of the
four corner pixels, which reads channels-last features and bool masks without copies.
"""
from dataclasses import dataclass
from typing import Iterator, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def bilinear_corners(points: Tensor, h: int, w: int) -> Iterator[Tuple[Tensor, Tensor]]:
    """The four pixels a bilinear sample reads, and their weights, corner by corner.

    Args:
        points (Tensor): (..., 2) normalised (x, y) in [0, 1] of an (h, w) map; outside is
            allowed (zero padding: out-of-map corners get weight 0).
        h, w (int): Map size.

    Yields:
        tuple: For each of the 4 corners, ``index`` (...) long flat pixel indices ``y * w + x``
        (clamped into the map) and ``weight`` (...) float32, as
        ``grid_sample(..., align_corners=False)`` computes them (up to float rounding).
    """
    grid = points.float() * 2 - 1  # grid_sample's frame, then its unnormalisation
    x = ((grid[..., 0] + 1) * w - 1) / 2
    y = ((grid[..., 1] + 1) * h - 1) / 2
    x0, y0 = x.floor(), y.floor()
    for dy in (0, 1):
        yi = y0 + dy
        wy = (y - y0) if dy else (y0 + 1 - y)
        for dx in (0, 1):
            xi = x0 + dx
            wx = (x - x0) if dx else (x0 + 1 - x)
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            yield (yi.clamp(0, h - 1).long() * w + xi.clamp(0, w - 1).long(),
                   wx * wy * inside)


def sample_features(features_hwc: Tensor, points: Tensor) -> Tensor:
    """Bilinear samples of a channels-last feature map.

    Args:
        features_hwc (Tensor): (h, w, C).
        points (Tensor): (num_points, 2) normalised (x, y).

    Returns:
        Tensor: (num_points, C), as ``point_sample`` of the (C, h, w) map, transposed.
    """
    h, w, c = features_hwc.shape
    flat = features_hwc.reshape(h * w, c)
    out = features_hwc.new_zeros((points.size(0), c))
    for index, weight in bilinear_corners(points, h, w):
        out.addcmul_(flat.index_select(0, index), weight[:, None].to(out.dtype))
    return out


def point_mask_logits(mask_embeds: Tensor, features_hwc: Tensor, points: Tensor) -> Tensor:
    """Mask logits of every query at points shared by all queries of one image.

    Args:
        mask_embeds (Tensor): (nq, mask_dims) mask embeddings of one image's queries.
        features_hwc (Tensor): (h, w, mask_dims) that image's pixel embedding, channels last.
        points (Tensor): (num_points, 2) normalised (x, y) in [0, 1] of the map.

    Returns:
        Tensor: (nq, num_points), equal to bilinear ``point_sample`` (``align_corners=False``,
        zero padding) of the full mask logits.
    """
    return mask_embeds @ sample_features(features_hwc, points).t()


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

    The same numbers as ``point_sample(masks[index][:, None].float(), points)`` (up to float
    rounding of the pixel coordinates), but only the four corner pixels of each point are read:
    no (m, H, W) copy of full-resolution masks is made, and ``masks`` may be bool.

    Args:
        masks (Tensor): (n, H, W) masks (bool, integer or float).
        index (Tensor): (m,) long, which mask each row of ``points`` samples.
        points (Tensor): (m, num_points, 2) normalised (x, y) in [0, 1].

    Returns:
        Tensor: (m, num_points) float32.
    """
    h, w = masks.shape[-2:]
    flat, offset = masks.reshape(-1), (index * (h * w))[:, None]
    out = torch.zeros(points.shape[:-1], device=points.device)
    for corner, weight in bilinear_corners(points, h, w):
        values = flat.index_select(0, (corner + offset).reshape(-1)).view(corner.shape)
        out.addcmul_(values.float(), weight)
    return out


def most_uncertain(mask_logits: Tensor, candidates: Tensor, num_uncertain: int) -> Tensor:
    """Which candidates have the smallest ``|logit|`` (PointRend's uncertainty), per mask.

    Args:
        mask_logits (Tensor): (m, h, w) mask logits.
        candidates (Tensor): (m, k, 2) normalised (x, y) candidates of each mask.
        num_uncertain (int): How many to keep per mask.

    Returns:
        Tensor: (m, num_uncertain) long indices into the candidates (unsorted).
    """
    return _least_certain(_grid_values(mask_logits[:, None], candidates)[:, 0], num_uncertain)


def _grid_values(maps: Tensor, points: Tensor) -> Tensor:
    """``grid_sample`` (bilinear, ``align_corners=False``) of (N, C, h, w) maps at (N, k, 2)
    normalised (x, y) points -> (N, C, k)."""
    grid = points.mul(2).sub_(1)[:, :, None]  # grid_sample's [-1, 1] frame
    return F.grid_sample(maps, grid, align_corners=False)[..., 0]


def _least_certain(logits: Tensor, num_uncertain: int) -> Tensor:
    """(m, k) logits -> (m, num_uncertain) indices of the smallest ``|logit|`` (unsorted)."""
    return logits.abs().topk(num_uncertain, dim=1, largest=False, sorted=False)[1]


def uncertain_points(mask_logits: Tensor, num_points: int, oversample_ratio: float,
                     importance_sample_ratio: float) -> Tensor:
    """PointRend's importance sampling of the points a mask loss is computed on.

    ``num_points * oversample_ratio`` random candidates per mask (``torch.rand(m, k, 2)``); the
    ``importance_sample_ratio * num_points`` with the smallest ``|logit|`` (the most uncertain)
    are kept, then ``torch.rand(m, rest, 2)`` random points are appended: the draws, and the chosen
    set, of mmdet's ``get_uncertain_point_coords_with_randomness`` (which Mask2Former and upstream
    Mask DINO use), without its sorted top-k and intermediate copies.

    Args:
        mask_logits (Tensor): (m, h, w) mask logits (no gradient needed).
        num_points (int): Points per mask.
        oversample_ratio (float): Candidates per point (>= 1).
        importance_sample_ratio (float): Fraction of points chosen by uncertainty.

    Returns:
        Tensor: (m, num_points, 2) normalised (x, y) in [0, 1].
    """
    m = mask_logits.size(0)
    num_uncertain = int(importance_sample_ratio * num_points)
    candidates = torch.rand(m, int(num_points * oversample_ratio), 2, device=mask_logits.device)
    chosen = most_uncertain(mask_logits, candidates, num_uncertain)
    points = candidates.gather(1, chosen[..., None].expand(-1, -1, 2))
    if num_points > num_uncertain:
        rand = torch.rand(m, num_points - num_uncertain, 2, device=mask_logits.device)
        points = torch.cat([points, rand], 1)
    return points


@dataclass
class TargetPoints:
    """Mask-loss points of one image's targets, drawn once per step and shared by every set.

    Each target gets its candidates and its random points once; every prediction set paired with
    it (each decoder layer, the interm output, each denoising group) keeps its own most uncertain
    candidates, so the chosen points still depend on that set's mask. Upstream draws fresh
    candidates for every pair of every set: the same distribution for each set, here correlated
    across sets (and identical values under a shape-keyed generator, which fixture C uses).

    Attributes:
        candidates (Tensor): (n, k, 2) normalised (x, y) candidates per target.
        candidate_gt (Tensor): (n, k) float GT mask values at the candidates.
        extra (Tensor): (n, r, 2) random points appended after the chosen ones.
        extra_gt (Tensor): (n, r) float GT mask values at ``extra``.
        num_uncertain (int): Candidates kept per pair.
    """
    candidates: Tensor
    candidate_gt: Tensor
    extra: Tensor
    extra_gt: Tensor
    num_uncertain: int

    @classmethod
    def draw(cls, masks: Tensor, num_points: int, oversample_ratio: float,
             importance_sample_ratio: float) -> 'TargetPoints':
        """Draw the points of ``masks`` (n, H, W) (the draws of :func:`uncertain_points` with
        one row per target) and read the GT there."""
        n, device = masks.size(0), masks.device
        num_uncertain = int(importance_sample_ratio * num_points)
        candidates = torch.rand(n, int(num_points * oversample_ratio), 2, device=device)
        extra = torch.rand(n, num_points - num_uncertain, 2, device=device)
        index = torch.arange(n, device=device)
        return cls(candidates, sample_masks(masks, index, candidates), extra,
                   sample_masks(masks, index, extra), num_uncertain)


def shared_uncertain_points(mask_logits: Tensor, shared: List[TargetPoints],
                            gt_index: List[Tensor]) -> Tuple[Tensor, Tensor]:
    """:func:`uncertain_points` from each pair's target's shared draws, and the GT there.

    Pairs sharing a target read their logits at the same candidates, so when every target of an
    image has the same number of pairs (a denoising set: one per group; a matching set: one), the
    maps of a target's pairs are sampled as the channels of one ``grid_sample`` call (one set of
    bilinear weights per candidate) and no per-pair copy of the candidates is made.

    Args:
        mask_logits (Tensor): (m, h, w) mask logits of the pairs (images in batch order).
        shared (list[TargetPoints]): Per image.
        gt_index (list[Tensor]): Per image, (m_b,) long target of each pair.

    Returns:
        tuple: ``points`` (m, num_points, 2) and ``gt_points`` (m, num_points) float: the chosen
        candidates, then the target's random points.
    """
    num_uncertain = shared[0].num_uncertain
    points, gt = [], []
    for logits, s, index in zip(mask_logits.split([i.numel() for i in gt_index]), shared,
                                gt_index):
        if index.numel() == 0:
            continue
        chosen = _least_certain(candidate_logits(logits, s.candidates, index), num_uncertain)
        flat = (index[:, None] * s.candidates.size(1) + chosen).view(-1)  # into (n * k)
        points.append(torch.cat([s.candidates.view(-1, 2).index_select(0, flat)
                                 .view(*chosen.shape, 2), s.extra[index]], 1))
        gt.append(torch.cat([s.candidate_gt.view(-1).index_select(0, flat).view(chosen.shape),
                             s.extra_gt[index]], 1))
    if not points:
        k = shared[0].extra.size(1) + num_uncertain
        return mask_logits.new_zeros((0, k, 2)), mask_logits.new_zeros((0, k))
    return torch.cat(points), torch.cat(gt)


def candidate_logits(logits: Tensor, candidates: Tensor, index: Tensor) -> Tensor:
    """Bilinear samples of each pair's logit map at its target's candidates.

    Args:
        logits (Tensor): (m, h, w) logit maps of one image's pairs.
        candidates (Tensor): (n, k, 2) normalised candidates of the image's targets.
        index (Tensor): (m,) long target of each pair.

    Returns:
        Tensor: (m, k), as ``grid_sample`` of ``logits[i]`` at ``candidates[index[i]]``.
    """
    n, m = candidates.size(0), index.numel()
    counts = torch.bincount(index, minlength=n)
    groups = m // n if m % n == 0 else 0
    if groups and bool((counts == groups).all()):  # targets as rows, their pairs as channels
        order = torch.argsort(index, stable=True)
        sampled = _grid_values(logits[order].view(n, groups, *logits.shape[1:]),
                               candidates).reshape(m, -1)  # (n, groups, k) -> target-major
        out = torch.empty_like(sampled)
        out[order] = sampled
        return out
    return _grid_values(logits[:, None], candidates[index])[:, 0]


@dataclass
class MatchPoints:
    """The matcher's points of one image, drawn once per step and shared by the matching sets.

    Attributes:
        points (Tensor): (num_points, 2) normalised (x, y).
        features (Tensor): (num_points, mask_dims) pixel embedding there (fp32).
        gt (Tensor): (n, num_points) float GT mask values there.
    """
    points: Tensor
    features: Tensor
    gt: Tensor

    @classmethod
    def draw(cls, features_hwc: Tensor, masks: Tensor, num_points: int) -> 'MatchPoints':
        """``torch.rand(1, num_points, 2)`` (upstream's matcher draw), then the (h, w, C) pixel
        embedding and the (n, H, W) masks read there."""
        points = torch.rand((1, num_points, 2), device=features_hwc.device)[0]
        n = masks.size(0)
        gt = sample_masks(masks, torch.arange(n, device=points.device),
                          points.expand(n, -1, -1))
        return cls(points, sample_features(features_hwc.float(), points), gt)
