"""Match costs of Mask DINO: upstream's GIoU, thing-only box costs (panoptic) and the point-mask BCE
cost."""
from typing import Optional, Union

import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet.models.task_modules.assigners.match_cost import BaseMatchCost, CrossEntropyLossCost
from mmdet.registry import TASK_UTILS
from ..losses.giou import generalized_box_iou


@TASK_UTILS.register_module()
class PointMaskBCECost(CrossEntropyLossCost):
    """Mean sigmoid BCE of every prediction's point logits against every target's point values:
    the values of mmdet's ``CrossEntropyLossCost(use_sigmoid=True)`` (the Mask2Former / Mask DINO
    mask cost), computed with one softplus pass and one matrix product instead of two BCE passes
    over ``(num_preds, num_points)``: ``BCE(x, 1) = softplus(-x)`` and ``BCE(x, 0) = softplus(-x) +
    x``, so ``cost = (sum_p softplus(-x_p) + sum_p x_p (1 - t_p)) / num_points``.

    Args:
        weight (float): Cost weight.
    """

    def __init__(self, weight: Union[float, int] = 1.) -> None:
        super().__init__(use_sigmoid=True, weight=weight)

    def _binary_cross_entropy(self, cls_pred: Tensor, gt_labels: Tensor) -> Tensor:
        """(num_preds, num_points) logits and (num_gts, num_points) targets -> (num_preds,
        num_gts)."""
        x = cls_pred.flatten(1).float()
        t = gt_labels.flatten(1).float()
        return (F.softplus(-x).sum(1, keepdim=True) + x @ (1 - t).t()) / x.size(1)


@TASK_UTILS.register_module()
class ThingBoxCost(BaseMatchCost):
    """A box match cost that only thing targets steer (upstream's panoptic matching).

    Wraps a box cost (``BBoxL1Cost``, ``IoUCost``, ...). Columns of stuff targets -- those with
    ``gt_instances.is_thing`` False: a stuff region's box says little -- get the mean cost over the
    thing targets of the image (0 when it has none), so the box terms do not change which query
    a stuff segment is matched to. Without ``is_thing`` the wrapped cost is returned unchanged.

    Args:
        cost (dict): The wrapped box cost config (its own ``weight`` applies).
    """

    def __init__(self, cost: Union[dict, ConfigDict]) -> None:
        super().__init__(weight=1.0)
        self.cost = TASK_UTILS.build(cost)

    def __call__(self, pred_instances: InstanceData, gt_instances: InstanceData,
                 img_meta: Optional[dict] = None, **kwargs) -> Tensor:
        """Returns the (num_preds, num_gts) cost matrix."""
        cost = self.cost(pred_instances, gt_instances, img_meta, **kwargs)
        if 'is_thing' not in gt_instances:
            return cost
        is_thing = gt_instances.is_thing
        if is_thing.all():
            return cost
        cost = cost.clone()
        cost[:, ~is_thing] = cost[:, is_thing].mean() if is_thing.any() else 0.0
        return cost


@TASK_UTILS.register_module()
class MaskDINOGIoUCost(BaseMatchCost):
    """``-GIoU`` match cost with upstream's formula, on boxes normalised by ``img_shape``.

    Upstream's matcher takes the GIoU of normalised cxcywh boxes converted to xyxy, so its ``eps``
    is relative to the image; the absolute xyxy boxes given here (as mmdet's ``IoUCost`` takes
    them) are divided by ``img_meta['img_shape']`` (the padded batch in :class:`HybridMatcher`)
    first. Without ``img_meta`` the boxes are used as they are.

    Args:
        eps (float): Added to the denominators.
        weight (float): Cost weight.
    """

    def __init__(self, eps: float = 1e-6, weight: float = 1.0) -> None:
        super().__init__(weight=weight)
        self.eps = eps

    def __call__(self, pred_instances: InstanceData, gt_instances: InstanceData,
                 img_meta: Optional[dict] = None, **kwargs) -> Tensor:
        """``pred_instances.bboxes`` (num_preds, 4) and ``gt_instances.bboxes`` (num_gts, 4),
        absolute xyxy -> (num_preds, num_gts) weighted cost."""
        pred, gt = pred_instances.bboxes.float(), gt_instances.bboxes.float()
        if img_meta is not None:
            h, w = img_meta['img_shape'][:2]
            scale = pred.new_tensor([w, h, w, h])
            pred, gt = pred / scale, gt / scale
        return -generalized_box_iou(pred, gt, eps=self.eps) * self.weight
