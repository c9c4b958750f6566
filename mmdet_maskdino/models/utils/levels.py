"""Flattening multi-level feature maps into one token sequence (pure function)."""
from typing import Sequence, Tuple

import torch
from torch import Tensor


def flatten_levels(feats: Sequence[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    """Concatenate levels into tokens, as deformable attention expects them.

    Args:
        feats (Sequence[Tensor]): Levels (bs, C, h_l, w_l), in the order the tokens should follow.

    Returns:
        tuple: ``tokens`` (bs, sum(h_l * w_l), C); ``spatial_shapes`` (num_levels, 2) long ``(h, w)``;
        ``level_start_index`` (num_levels,) long.
    """
    shapes = torch.as_tensor([f.shape[-2:] for f in feats], dtype=torch.long,
                             device=feats[0].device)
    tokens = torch.cat([f.flatten(2).transpose(1, 2) for f in feats], 1)
    start = torch.cat((shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]))
    return tokens, shapes, start
