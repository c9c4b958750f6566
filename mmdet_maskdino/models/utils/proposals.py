"""Two-stage proposals on encoder tokens (DINO-style), as a pure function."""
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor


def gen_encoder_output_proposals(memory: Tensor, memory_mask: Optional[Tensor],
                                 spatial_shapes: Union[Tensor, Sequence[Tuple[int, int]]],
                                 base_size: float = 0.05) -> Tuple[Tensor, Tensor]:
    """One proposal per encoder token and the memory with invalid tokens zeroed.

    Proposal of a token at level ``lvl`` (index in ``spatial_shapes``): centre of its cell, width and
    height ``base_size * 2 ** lvl``, all normalised by the valid size of that level.

    Args:
        memory (Tensor): Encoder output tokens, shape (bs, num_tokens, embed_dims), levels
            concatenated in the order of ``spatial_shapes``.
        memory_mask (Tensor | None): Padding mask (bs, num_tokens), True at padded tokens.
        spatial_shapes (Tensor | list): (num_levels, 2) ``(h, w)`` of each level, or the
            ``(h, w)`` sizes themselves (:func:`level_shapes`: symbolic in an exported graph).
        base_size (float): Proposal size at level 0.

    Returns:
        tuple: ``memory`` with padded/invalid tokens set to 0, shape (bs, num_tokens, embed_dims);
        ``proposals`` unsigmoided cxcywh (bs, num_tokens, 4), ``inf`` where invalid (any coordinate
        outside (0.01, 0.99) or padded).
    """
    bs = memory.size(0)
    proposals = []
    start = 0
    if isinstance(spatial_shapes, Tensor):
        spatial_shapes = spatial_shapes.tolist()
    for lvl, (h, w) in enumerate(spatial_shapes):
        if memory_mask is not None:
            mask = memory_mask[:, start:start + h * w].view(bs, h, w)
            valid_h = (~mask[:, :, 0]).sum(1).unsqueeze(-1)
            valid_w = (~mask[:, 0, :]).sum(1).unsqueeze(-1)
            scale = torch.cat([valid_w, valid_h], 1).view(bs, 1, 1, 2).to(memory.dtype)
        else:
            scale = None
        # arange(n) = linspace(0, n - 1, n) exactly; it also keeps n symbolic when exported
        grid_y, grid_x = torch.meshgrid(
            torch.arange(h, device=memory.device).to(memory.dtype),
            torch.arange(w, device=memory.device).to(memory.dtype), indexing='ij')
        if scale is None:  # (x + 0.5) / w, (y + 0.5) / h
            grid = torch.stack([(grid_x + 0.5) / w, (grid_y + 0.5) / h], -1)
            grid = grid.unsqueeze(0).expand(bs, -1, -1, -1)
        else:
            grid = torch.cat([grid_x.unsqueeze(-1), grid_y.unsqueeze(-1)], -1)
            grid = (grid.unsqueeze(0).expand(bs, -1, -1, -1) + 0.5) / scale
        wh = torch.ones_like(grid) * base_size * (2.0**lvl)
        proposals.append(torch.cat((grid, wh), -1).view(bs, -1, 4))
        start += h * w
    proposals = torch.cat(proposals, 1)
    valid = ((proposals > 0.01) & (proposals < 0.99)).all(-1, keepdim=True)
    proposals = torch.log(proposals / (1 - proposals))
    if memory_mask is not None:
        proposals = proposals.masked_fill(memory_mask.unsqueeze(-1), float('inf'))
        memory = memory.masked_fill(memory_mask.unsqueeze(-1), 0.)
    proposals = proposals.masked_fill(~valid, float('inf'))
    memory = memory.masked_fill(~valid, 0.)
    return memory, proposals
