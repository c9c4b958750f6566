"""Flattening multi-level feature maps into one token sequence (pure function)."""
from typing import List, Sequence, Tuple

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
    if torch.jit.is_tracing():  # keep the sizes symbolic in an exported graph
        shapes = torch.stack([torch._shape_as_tensor(f)[-2:] for f in feats]).to(feats[0].device)
    else:
        shapes = torch.as_tensor([f.shape[-2:] for f in feats], dtype=torch.long,
                                 device=feats[0].device)
    tokens = torch.cat([f.flatten(2).transpose(1, 2) for f in feats], 1)
    start = torch.cat((shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]))
    return tokens, shapes, start


def level_shapes(feats: Sequence[Tensor]) -> List[Tuple[int, int]]:
    """``(h, w)`` of every level as Python sizes read off the maps (symbolic when traced for
    export, unlike ``spatial_shapes.tolist()``)."""
    return [tuple(f.shape[-2:]) for f in feats]
