"""Generalized IoU as upstream Mask DINO computes it (the loss; the matching cost is
:class:`~mmdet_maskdino.models.task_modules.MaskDINOGIoUCost`).

Upstream (DINO's ``box_ops``) adds ``eps`` to the denominators::

    giou = inter / (union + eps) - (enclosing - union) / (enclosing + eps)

where mmdet's ``bbox_overlaps`` clamps them at ``eps`` instead (``inter / max(union, eps)``). The
two differ by about ``eps / union`` relative: 1e-4 for a box pair whose union is 1e-2 of the image
(normalised coordinates), above the training fixture's loss tolerance.
"""
from typing import Optional

import torch
from torch import Tensor

from mmdet.models.losses import GIoULoss
from mmdet.models.losses.utils import weight_reduce_loss
from mmdet.registry import MODELS


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor, is_aligned: bool = False,
                        eps: float = 1e-6) -> Tensor:
    """GIoU with ``eps`` added to the union and the enclosing area (upstream's formula).

    Areas are ``(x2 - x1) * (y2 - y1)`` without clamping, as upstream; boxes are expected valid
    (``x2 >= x1``, ``y2 >= y1``; zero width or height is fine).

    Args:
        boxes1 (Tensor): (n, 4) xyxy.
        boxes2 (Tensor): (m, 4) xyxy, or (n, 4) when ``is_aligned``.
        is_aligned (bool): Pair row ``i`` with row ``i`` instead of every pair.
        eps (float): Added to the denominators.

    Returns:
        Tensor: (n, m) GIoU of every pair, or (n,) when ``is_aligned``; values in [-1, 1].
    """
    if not is_aligned:
        boxes1, boxes2 = boxes1[:, None], boxes2[None]
    area1 = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])
    area2 = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])
    inter_wh = (torch.minimum(boxes1[..., 2:], boxes2[..., 2:]) -
                torch.maximum(boxes1[..., :2], boxes2[..., :2])).clamp(min=0)
    inter = inter_wh[..., 0] * inter_wh[..., 1]
    union = area1 + area2 - inter
    enclose_wh = (torch.maximum(boxes1[..., 2:], boxes2[..., 2:]) -
                  torch.minimum(boxes1[..., :2], boxes2[..., :2])).clamp(min=0)
    enclose = enclose_wh[..., 0] * enclose_wh[..., 1]
    return inter / (union + eps) - (enclose - union) / (enclose + eps)


@MODELS.register_module()
class MaskDINOGIoULoss(GIoULoss):
    """``1 - GIoU`` with upstream's formula (:func:`generalized_box_iou`); otherwise mmdet's
    :class:`GIoULoss` (``eps``, ``reduction``, ``loss_weight``, weights and ``avg_factor``).

    Upstream computes it on boxes normalised by the image size; the criterion passes xyxy
    normalised by the padded batch.
    """

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                **kwargs) -> Tensor:
        """Args:
            pred (Tensor): (n, 4) predicted xyxy.
            target (Tensor): (n, 4) target xyxy.
            weight (Tensor, optional): (n,) or (n, 4) (averaged over the last dimension).
            avg_factor (float, optional): Normaliser of the mean.
            reduction_override (str, optional): ``'none'``, ``'mean'`` or ``'sum'``.

        Returns:
            Tensor: The weighted loss.
        """
        assert reduction_override in (None, 'none', 'mean', 'sum')
        reduction = reduction_override or self.reduction
        if weight is not None and weight.dim() > 1:
            weight = weight.mean(-1)
        loss = 1 - generalized_box_iou(pred, target, is_aligned=True, eps=self.eps)
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)
