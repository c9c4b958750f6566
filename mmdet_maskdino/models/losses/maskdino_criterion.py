"""Mask DINO's training objective: hybrid matching, then the losses of every prediction set."""
from typing import Dict, List, Optional, Tuple

import torch
from mmcv.ops import point_sample
from mmengine.model import BaseModule
from torch import Tensor

from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmdet.utils import ConfigType, reduce_mean
from ..layers.denoising import DnQueries
from ..task_modules.hybrid_matcher import DEFAULT_ASSIGNER, HybridMatcher
from ..utils.finite import check_finite_tensors
from ..utils.point_masks import (MatchPoints, TargetPoints, matched_mask_logits, sample_masks,
                                 shared_uncertain_points, uncertain_points)
from ..utils.predictions import HeadOutputs, PredictionSets
from ..utils.targets import SegTargets


@MODELS.register_module()
class MaskDINOCriterion(BaseModule):
    """Losses of :class:`HeadOutputs` against :class:`SegTargets` (upstream ``SetCriterion``).

    Every matching set (the initial prediction, each decoder layer, the interm output) is matched
    on its own by :class:`HybridMatcher`; denoising sets use the known query <-> GT pairs of
    :meth:`DnQueries.positive_indices`. Each set gets a class loss over all queries and box /
    mask losses over its pairs, normalised by the number of GT in the batch (averaged across
    ranks, at least 1; times the DN groups for DN sets). Masks enter as matched-query logits
    (:func:`matched_mask_logits`), sampled at ``num_points`` points per mask: 75% the most
    uncertain of ``oversample_ratio x num_points`` random candidates, the rest random (PointRend).

    With ``share_points`` (default) the random numbers are drawn once per step: the matcher's
    points once per image (:class:`MatchPoints`: the pixel embedding and GT are read there once for
    the 11 matching sets), the mask-loss candidates and random points once per target
    (:class:`TargetPoints`: GT read once for the 21 sets and the denoising groups). Each set still
    keeps its own most uncertain candidates. Upstream draws for every set and pair; each set's
    loss has the same distribution either way, and the values are equal when the draws are (under
    fixture C's shape-keyed generator). ``share_points=False`` draws as upstream.

    Loss keys: ``loss_{cls,bbox,iou,mask,dice}`` (last layer), ``d{i}.*`` (initial prediction
    ``d0`` and the other layers), ``interm.*``, ``dn.*`` and ``dn.d{i}.*``.

    Args:
        num_things_classes (int): Thing classes.
        num_stuff_classes (int): Stuff classes.
        thing_boxes_only (bool): In a model with things and stuff, only things supervise boxes and
            steer the box costs (with ``ThingBoxCost`` in the assigner; upstream's
            ``PANO_BOX_LOSS: True``). Default False: stuff segments' boxes are matched and
            supervised like things', as in upstream's released panoptic configs
            (``PANO_BOX_LOSS: False``).
        loss_cls, loss_bbox, loss_iou, loss_mask, loss_dice (dict): Loss configs (weights inside).
            A ``loss_cls`` with ``use_sigmoid=False`` (``CrossEntropyLoss``, ``class_weight``
            ending with the no-object weight) means softmax logits with a no-object column.
        assigner (dict): Hungarian assigner with the hybrid match costs.
        num_points (int): Points per mask for matching and for the mask losses.
        oversample_ratio (float): Candidate points per sampled point.
        importance_sample_ratio (float): Fraction of points taken by uncertainty.
        share_points (bool): Draw the matcher's and the mask losses' random points once per
            step and share them across the prediction sets (see above). Default True.
    """

    def __init__(self,
                 *,
                 num_things_classes: int,
                 num_stuff_classes: int = 0,
                 thing_boxes_only: bool = False,
                 loss_cls: ConfigType,
                 loss_bbox: ConfigType,
                 loss_iou: ConfigType,
                 loss_mask: ConfigType,
                 loss_dice: ConfigType,
                 assigner: ConfigType = DEFAULT_ASSIGNER,
                 num_points: int = 12544,
                 oversample_ratio: float = 3.0,
                 importance_sample_ratio: float = 0.75,
                 share_points: bool = True) -> None:
        super().__init__()
        self.num_things_classes = num_things_classes
        self.num_classes = num_things_classes + num_stuff_classes
        self.thing_boxes_only = thing_boxes_only
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_iou = MODELS.build(loss_iou)
        self.loss_mask = MODELS.build(loss_mask)
        self.loss_dice = MODELS.build(loss_dice)
        self.matcher = HybridMatcher(assigner, num_points)
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.share_points = share_points
        self.use_sigmoid_cls = bool(getattr(self.loss_cls, 'use_sigmoid', False))

    @property
    def cls_out_channels(self) -> int:
        """Class logits per query: classes, plus a no-object column with softmax CE."""
        return self.num_classes + (0 if self.use_sigmoid_cls else 1)

    def box_supervised(self, labels: Tensor) -> Tensor:
        """(n,) bool: targets that supervise boxes and steer box costs (``ThingBoxCost``).

        All of them, except with ``thing_boxes_only`` in a panoptic model (thing and stuff
        classes), where only things do. A semantic model (stuff only) supervises every box.
        """
        if not self.thing_boxes_only or self.num_things_classes in (0, self.num_classes):
            return torch.ones_like(labels, dtype=torch.bool)
        return labels < self.num_things_classes

    # ------------------------------------------------------------------ loss_by_feat
    def forward(self, outputs: HeadOutputs, targets: List[SegTargets],
                dn: Optional[DnQueries] = None, **set_inputs) -> Dict[str, Tensor]:
        """Every loss of one batch (mmdet's ``loss_by_feat``).

        Args:
            outputs (HeadOutputs): The head's predictions.
            targets (list[SegTargets]): One per image.
            dn (DnQueries, optional): The denoising queries ``outputs.dn`` were made from.
            **set_inputs: Passed to every :meth:`loss_by_feat_single` call (for subclasses with
                losses of their own, e.g. UP-DETR's patch features).

        Returns:
            dict[str, Tensor]: Weighted losses (see the class docstring for the keys).
        """
        interm = outputs.interm
        check_finite_tensors(  # what the matcher reads
            dict(cls_logits=outputs.layers.cls_logits, boxes=outputs.layers.boxes,
                 mask_embeds=outputs.layers.mask_embeds, mask_features=outputs.mask_features,
                 interm_cls_logits=None if interm is None else interm.cls_logits,
                 interm_boxes=None if interm is None else interm.boxes), 'predictions')
        num_gt = self.num_gt(targets, outputs.layers.cls_logits)
        features = outputs.mask_features
        features_hwc = features.detach().float().permute(0, 2, 3, 1).contiguous()  # matching
        match_points, loss_points = self.draw_points(features_hwc, targets)
        if loss_points is not None:
            set_inputs = dict(set_inputs, loss_points=loss_points)
        names = [f'd{i}.' for i in range(len(outputs.layers) - 1)] + ['']
        losses = {}
        for prefix, preds in zip(names, outputs.layers):
            indices = self.match(preds, features_hwc, targets, match_points)
            losses.update(_prefixed(prefix, self.loss_by_feat_single(
                preds, features, targets, indices, num_gt, **set_inputs)))
        if outputs.interm is not None:
            indices = self.match(outputs.interm, features_hwc, targets, match_points)
            losses.update(_prefixed('interm.', self.loss_by_feat_single(
                outputs.interm, features, targets, indices, num_gt, **set_inputs)))
        if outputs.dn is not None:
            indices = dn.positive_indices([len(t) for t in targets])
            dn_norm = max(num_gt * dn.num_groups, 1.0)
            for prefix, preds in zip(names, outputs.dn):
                losses.update(_prefixed('dn.' + prefix, self.loss_by_feat_single(
                    preds, features, targets, indices, dn_norm, **set_inputs)))
        return losses

    def draw_points(self, features_hwc: Tensor, targets: List[SegTargets]
                    ) -> Tuple[Optional[List[Optional[MatchPoints]]],
                               Optional[List[TargetPoints]]]:
        """The step's shared random points (``share_points``; ``(None, None)`` otherwise).

        Returns:
            tuple: Per image, the matcher's :class:`MatchPoints` (None for an image without
            targets) and the mask losses' :class:`TargetPoints`.
        """
        if not self.share_points:
            return None, None
        match_points = [self.matcher.draw_points(features_hwc[b], t) if len(t) else None
                        for b, t in enumerate(targets)]
        loss_points = [TargetPoints.draw(t.masks, self.num_points, self.oversample_ratio,
                                         self.importance_sample_ratio) for t in targets]
        return match_points, loss_points

    @staticmethod
    def num_gt(targets: List[SegTargets], like: Tensor) -> float:
        """Targets per rank: the batch's count averaged across ranks, at least 1."""
        count = like.new_tensor(float(sum(len(t) for t in targets)))
        return max(reduce_mean(count).item(), 1.0)

    def match(self, preds: PredictionSets, features_hwc: Tensor, targets: List[SegTargets],
              points: Optional[List[Optional[MatchPoints]]] = None) -> List[Tensor]:
        """Hybrid matching of one prediction set, image by image.

        Args:
            preds (PredictionSets): One set.
            features_hwc (Tensor): (bs, h, w, mask_dims) pixel embedding, channels last.
            targets (list[SegTargets]): One per image.
            points (list[MatchPoints], optional): Per image, the step's shared matcher points
                (the matcher draws its own when None).

        Returns:
            list[Tensor]: Per image, (2, m) long ``(query index, gt index)``.
        """
        return [
            self.matcher(preds.cls_logits[0, b], preds.boxes[0, b], preds.mask_embeds[0, b],
                         features_hwc[b], t, self.box_supervised(t.labels),
                         None if points is None else points[b])
            for b, t in enumerate(targets)
        ]

    # ------------------------------------------------------------------ one set
    def loss_by_feat_single(self, preds: PredictionSets, mask_features: Tensor,
                            targets: List[SegTargets], indices: List[Tensor], num_gt: float,
                            loss_points: Optional[List[TargetPoints]] = None
                            ) -> Dict[str, Tensor]:
        """Losses of one prediction set given its pairs (mmdet's ``_loss_by_feat_single``).

        Args:
            preds (PredictionSets): One set (leading dimension 1).
            mask_features (Tensor): (bs, mask_dims, h, w).
            targets (list[SegTargets]): One per image.
            indices (list[Tensor]): Per image, (2, m) ``(query index, gt index)``.
            num_gt (float): Normaliser.
            loss_points (list[TargetPoints], optional): Per image, the step's shared mask-loss
                points (drawn per pair when None).
        """
        logits, boxes, embeds = preds.cls_logits[0], preds.boxes[0], preds.mask_embeds[0]
        loss_cls = self._class_loss(logits, targets, indices, num_gt)
        batch_idx = torch.cat([torch.full_like(idx[0], b) for b, idx in enumerate(indices)])
        query_idx = torch.cat([idx[0] for idx in indices])
        if query_idx.numel() == 0:  # no pairs: exact zeros that keep the graph
            zero = boxes.sum() * 0 + embeds.sum() * 0
            return dict(loss_cls=loss_cls, loss_bbox=zero, loss_iou=zero, loss_mask=zero,
                        loss_dice=zero)
        gt_labels = torch.cat([t.labels[idx[1]] for idx, t in zip(indices, targets)])
        gt_boxes = torch.cat([t.norm_cxcywh[idx[1]] for idx, t in zip(indices, targets)])
        loss_bbox, loss_iou = self._box_losses(boxes[batch_idx, query_idx].float(), gt_boxes,
                                               self.box_supervised(gt_labels), num_gt)
        with torch.autocast(embeds.device.type, enabled=False):
            pred_masks = matched_mask_logits(embeds.float(), mask_features.float(), indices)
            loss_mask, loss_dice = self._mask_losses(pred_masks, targets, indices, num_gt,
                                                     loss_points)
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox, loss_iou=loss_iou,
                    loss_mask=loss_mask, loss_dice=loss_dice)

    def _class_loss(self, logits: Tensor, targets: List[SegTargets], indices: List[Tensor],
                    num_gt: float) -> Tensor:
        """Focal loss over every (query, class), normalised by ``num_gt``; or softmax CE, the
        ``class_weight``-weighted mean over queries (unmatched queries -> no-object)."""
        bs, nq, channels = logits.shape
        labels = logits.new_full((bs, nq), self.num_classes, dtype=torch.long)
        for b, (idx, t) in enumerate(zip(indices, targets)):
            labels[b, idx[0]] = t.labels[idx[1]]
        labels = labels.reshape(-1)
        if self.use_sigmoid_cls:
            avg_factor = num_gt
        else:
            class_weight = self.loss_cls.class_weight or [1.0] * channels
            avg_factor = logits.new_tensor(class_weight)[labels].sum()
        return self.loss_cls(logits.reshape(-1, channels).float(), labels, avg_factor=avg_factor)

    def _box_losses(self, boxes: Tensor, gt_boxes: Tensor, supervised: Tensor,
                    num_gt: float) -> Tuple[Tensor, Tensor]:
        """L1 on normalised cxcywh and GIoU of the supervised pairs."""
        if not supervised.any():
            zero = boxes.sum() * 0
            return zero, zero
        boxes, gt_boxes = boxes[supervised], gt_boxes[supervised]
        loss_bbox = self.loss_bbox(boxes, gt_boxes, avg_factor=num_gt)
        loss_iou = self.loss_iou(bbox_cxcywh_to_xyxy(boxes), bbox_cxcywh_to_xyxy(gt_boxes),
                                 avg_factor=num_gt)
        return loss_bbox, loss_iou

    def _mask_losses(self, pred_masks: Tensor, targets: List[SegTargets],
                     indices: List[Tensor], num_gt: float,
                     loss_points: Optional[List[TargetPoints]] = None) -> Tuple[Tensor, Tensor]:
        """Point-sampled BCE and dice with importance sampling (PointRend / Mask2Former).

        Args:
            pred_masks (Tensor): (m, h, w) matched mask logits (1/4 of the padded batch), images
                in batch order, pairs in the order of ``indices``.
            targets (list[SegTargets]): One per image (GT read at the points only).
            indices (list[Tensor]): Per image, (2, m_b) ``(query index, gt index)``.
            num_gt (float): Normaliser.
            loss_points (list[TargetPoints], optional): Per image, shared draws of the targets
                (:func:`shared_uncertain_points`); drawn here per pair when None.
        """
        with torch.no_grad():
            if loss_points is not None:
                points, gt_points = shared_uncertain_points(
                    pred_masks.detach(), loss_points, [idx[1] for idx in indices])
            else:
                points, gt_points = self._drawn_points(pred_masks.detach(), targets, indices)
        pred_points = point_sample(pred_masks[:, None], points, align_corners=False).squeeze(1)
        loss_dice = self.loss_dice(pred_points, gt_points, avg_factor=num_gt)
        loss_mask = self.loss_mask(pred_points.reshape(-1), gt_points.reshape(-1),
                                   avg_factor=num_gt * self.num_points)
        return loss_mask, loss_dice

    def _drawn_points(self, pred_masks: Tensor, targets: List[SegTargets],
                      indices: List[Tensor]) -> Tuple[Tensor, Tensor]:
        """Upstream's draws: fresh points for every pair (``pred_masks`` detached), and the GT
        there."""
        points = uncertain_points(pred_masks, self.num_points, self.oversample_ratio,
                                  self.importance_sample_ratio)
        per_image = points.split([idx.size(1) for idx in indices])
        gt_points = torch.cat([sample_masks(t.masks, idx[1], p)
                               for t, idx, p in zip(targets, indices, per_image)])
        return points, gt_points


def _prefixed(prefix: str, losses: Dict[str, Tensor]) -> Dict[str, Tensor]:
    return {prefix + k: v for k, v in losses.items()}
