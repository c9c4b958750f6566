"""Mask DINO's hybrid matching: Hungarian assignment on class + box + mask costs."""
from typing import List, Optional, Tuple

import torch
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmdet.utils import ConfigType
from ..utils.point_masks import MatchPoints
from ..utils.targets import SegTargets

#: Upstream's cost: 4 focal class + 5 L1 (normalised cxcywh) + 2 (-GIoU) + 5 mask BCE + 5 dice.
DEFAULT_ASSIGNER = dict(
    type='HungarianAssigner',
    match_costs=[
        dict(type='FocalLossCost', weight=4.0, alpha=0.25, gamma=2.0, eps=1e-8),
        dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
        dict(type='MaskDINOGIoUCost', weight=2.0),  # upstream's +eps GIoU, normalised boxes
        dict(type='PointMaskBCECost', weight=5.0),  # = CrossEntropyLossCost(use_sigmoid)
        dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0),
    ])


class HybridMatcher:
    """One-to-one matching of one image's queries to its targets (no gradient, fp32).

    The mask costs are computed on ``num_points`` uniformly random points shared by every query
    and target of the image (drawn as ``torch.rand(1, num_points, 2)``, as upstream), from the
    point-sampled pixel embedding (:class:`MatchPoints`): no full-resolution mask is made. The
    points are drawn on each call unless a :class:`MatchPoints` is given (the criterion draws one
    per image and step and shares it across the matching sets).
    The costs are mmdet match costs run by mmdet's ``HungarianAssigner`` (scipy's solver).

    Args:
        assigner (dict): Assigner config; its match costs read ``scores`` (class logits),
            ``bboxes`` (absolute xyxy) and ``masks`` (point logits / point GT values).
        num_points (int): Points of the mask costs (12544 upstream).
    """

    def __init__(self, assigner: ConfigType = DEFAULT_ASSIGNER, num_points: int = 12544) -> None:
        self.assigner = TASK_UTILS.build(assigner)
        self.num_points = num_points

    def __call__(self, cls_logits: Tensor, boxes: Tensor, mask_embeds: Tensor,
                 features_hwc: Tensor, target: SegTargets,
                 is_thing: Optional[Tensor] = None,
                 points: Optional[MatchPoints] = None) -> Tensor:
        """Match one image.

        Args:
            cls_logits (Tensor): (nq, C) class logits.
            boxes (Tensor): (nq, 4) sigmoided cxcywh normalised w.r.t. the padded batch.
            mask_embeds (Tensor): (nq, mask_dims).
            features_hwc (Tensor): (h, w, mask_dims), the image's pixel embedding, channels
                last.
            target (SegTargets): The image's ground truth.
            is_thing (Tensor, optional): (n,) bool; targets whose box may steer box costs
                (read by ``ThingBoxCost``).
            points (MatchPoints, optional): The image's points, pixel embedding and GT there
                (drawn here when None).

        Returns:
            Tensor: (2, num_matched) long: query indices (ascending) and their GT indices.
        """
        if len(target) == 0:
            return cls_logits.new_zeros((2, 0), dtype=torch.long)
        with torch.no_grad(), torch.autocast(cls_logits.device.type, enabled=False):
            pred, gt, img_meta = self._instances(cls_logits, boxes, mask_embeds, features_hwc,
                                                 target, is_thing, points)
            result = self.assigner.assign(pred, gt, img_meta=img_meta)
        query = torch.nonzero(result.gt_inds > 0, as_tuple=False).squeeze(1)
        return torch.stack([query, result.gt_inds[query] - 1])

    def draw_points(self, features_hwc: Tensor, target: SegTargets) -> MatchPoints:
        """One image's random points, with its (h, w, mask_dims) pixel embedding and GT masks
        read there (no gradient, fp32)."""
        with torch.no_grad(), torch.autocast(features_hwc.device.type, enabled=False):
            return MatchPoints.draw(features_hwc, target.masks, self.num_points)

    def costs(self, cls_logits: Tensor, boxes: Tensor, mask_embeds: Tensor,
              features_hwc: Tensor, target: SegTargets,
              is_thing: Optional[Tensor] = None,
              points: Optional[MatchPoints] = None) -> List[Tensor]:
        """The weighted (nq, n) cost matrices of the assigner's match costs, in config order
        (their sum is what :meth:`__call__` assigns on, drawing its points the same way)."""
        with torch.no_grad(), torch.autocast(cls_logits.device.type, enabled=False):
            pred, gt, img_meta = self._instances(cls_logits, boxes, mask_embeds, features_hwc,
                                                 target, is_thing, points)
            return [cost(pred, gt, img_meta) for cost in self.assigner.match_costs]

    def _instances(self, cls_logits: Tensor, boxes: Tensor, mask_embeds: Tensor,
                   features_hwc: Tensor, target: SegTargets,
                   is_thing: Optional[Tensor], points: Optional[MatchPoints]
                   ) -> Tuple[InstanceData, InstanceData, dict]:
        """What mmdet's match costs read: class logits, absolute xyxy boxes and mask logits /
        GT values at ``num_points`` random points (fp32)."""
        h, w = target.pad_shape
        if points is None:
            points = self.draw_points(features_hwc, target)
        pred_points = mask_embeds.float() @ points.features.t()  # = point_mask_logits
        gt_points = points.gt
        scale = boxes.new_tensor([w, h, w, h], dtype=torch.float32)
        pred = InstanceData(scores=cls_logits.float(), masks=pred_points,
                            bboxes=bbox_cxcywh_to_xyxy(boxes.float()) * scale)
        gt = InstanceData(labels=target.labels, bboxes=target.boxes, masks=gt_points)
        if is_thing is not None:
            gt.is_thing = is_thing
        return pred, gt, dict(img_shape=(h, w))
