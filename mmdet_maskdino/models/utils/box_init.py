"""Mask-enhanced anchor box initialisation: boxes from predicted masks (pure functions)."""
from enum import Enum

import torch
from torch import Tensor

from mmdet.models.layers.transformer.utils import inverse_sigmoid
from mmdet.structures.bbox import bbox_xyxy_to_cxcywh


class BoxInitType(str, Enum):
    """How the decoder's anchor boxes are initialised from the selected encoder tokens.

    * ``NONE`` (upstream ``'no'``): the regressed encoder boxes (proposal + box head delta).
    * ``MASK2BOX`` (the paper's mask-enhanced init): tight box of the interm mask logits > 0,
      ``[x_min, y_min, x_max, y_max]`` in mask pixels (inclusive max); an empty mask gives
      ``x_min = y_min = 1e8, x_max = y_max = 0``.
    * ``BITMASK`` (upstream ``_3s`` configs): ``[x0, y0, x_last + 1, y_last + 1]``; empty -> zeros.
    """
    NONE = 'no'
    MASK2BOX = 'mask2box'
    BITMASK = 'bitmask'


def _row_col_any(masks: Tensor):
    return masks.any(dim=-2), masks.any(dim=-1)  # (N, W) columns with a pixel, (N, H) rows


def mask2box_tight(masks: Tensor) -> Tensor:
    """Tight xyxy boxes of boolean masks, upstream ``masks_to_boxes`` convention.

    Args:
        masks (Tensor): Boolean masks, shape (N, H, W).

    Returns:
        Tensor: (N, 4) float ``[x_min, y_min, x_max, y_max]`` in pixels, max inclusive. Empty masks
        give ``[1e8, 1e8, 0, 0]``.
    """
    n, h, w = masks.shape
    if n == 0:
        return masks.new_zeros((0, 4), dtype=torch.float32)
    ys = torch.arange(h, dtype=torch.float32, device=masks.device)
    xs = torch.arange(w, dtype=torch.float32, device=masks.device)
    cols, rows = _row_col_any(masks)
    big = torch.full((), 1e8, device=masks.device)
    x_min = torch.where(cols, xs, big).amin(-1)
    y_min = torch.where(rows, ys, big).amin(-1)
    x_max = torch.where(cols, xs, torch.zeros_like(big)).amax(-1)
    y_max = torch.where(rows, ys, torch.zeros_like(big)).amax(-1)
    return torch.stack([x_min, y_min, x_max, y_max], -1)


def mask2box_bitmask(masks: Tensor) -> Tensor:
    """Boxes of boolean masks in detectron2's ``BitMasks.get_bounding_boxes`` convention.

    Args:
        masks (Tensor): Boolean masks, shape (N, H, W).

    Returns:
        Tensor: (N, 4) float ``[x0, y0, x_last + 1, y_last + 1]``; empty masks give zeros.
    """
    boxes = mask2box_tight(masks)
    boxes[:, 2:] += 1
    empty = ~masks.flatten(1).any(-1)
    boxes[empty] = 0
    return boxes


def init_anchor_boxes(mask_logits: Tensor, box_init: BoxInitType, eps: float = 1e-5) -> Tensor:
    """Anchor boxes (inverse-sigmoid, normalised cxcywh) from interm mask logits.

    Args:
        mask_logits (Tensor): Interm mask logits, shape (bs, num_queries, h, w), at 1/4 of the padded
            batch. A pixel is foreground where its logit is > 0.
        box_init (BoxInitType): ``MASK2BOX`` or ``BITMASK``.
        eps (float): Clamp of the inverse sigmoid.

    Returns:
        Tensor: (bs, num_queries, 4) unsigmoided cxcywh, normalised by the mask map size (so by the
        padded batch size).
    """
    bs, nq, h, w = mask_logits.shape
    masks = mask_logits.detach().flatten(0, 1) > 0
    if box_init == BoxInitType.MASK2BOX:
        boxes = mask2box_tight(masks)
    elif box_init == BoxInitType.BITMASK:
        boxes = mask2box_bitmask(masks)
    else:
        raise ValueError(f'no mask-derived boxes for box_init={box_init!r}')
    # [w, h, w, h] read off the shape as a tensor (stays symbolic in an exported graph)
    size = torch._shape_as_tensor(mask_logits)[[3, 2, 3, 2]].to(boxes)
    boxes = bbox_xyxy_to_cxcywh(boxes) / size
    return inverse_sigmoid(boxes.reshape(bs, nq, 4), eps=eps)
