"""Losses of Mask DINO: hybrid matching, then focal / L1 / GIoU / point-sampled mask losses."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmcv.ops import point_sample
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet.models.utils import get_uncertain_point_coords_with_randomness
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures import DetDataSample, SampleList
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_xyxy_to_cxcywh
from mmdet.structures.mask import mask2bbox
from mmdet.utils import ConfigType, reduce_mean
from ..layers import DnQueries

DEFAULT_ASSIGNER = dict(
    type='HungarianAssigner',
    match_costs=[
        dict(type='FocalLossCost', weight=4.0, alpha=0.25, gamma=2.0),
        dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
        dict(type='IoUCost', iou_mode='giou', weight=2.0),
        dict(type='CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
        dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0),
    ])


class _Targets:
    """Ground truth of one image in the padded-batch frame.

    Attributes:
        labels (Tensor): (n,) long.
        boxes (Tensor): (n, 4) absolute xyxy in pixels of the padded batch.
        masks (Tensor): (n, H_pad, W_pad) float {0, 1}.
        pad_shape (tuple): ``(H_pad, W_pad)``.
    """

    def __init__(self, labels: Tensor, boxes: Tensor, masks: Tensor, pad_shape: Tuple[int, int]):
        self.labels, self.boxes, self.masks, self.pad_shape = labels, boxes, masks, pad_shape

    def __len__(self) -> int:
        return self.labels.numel()

    @property
    def norm_cxcywh(self) -> Tensor:
        h, w = self.pad_shape
        return bbox_xyxy_to_cxcywh(self.boxes / self.boxes.new_tensor([w, h, w, h]))


def _pad_to(x: Tensor, shape: Tuple[int, int], value) -> Tensor:
    """Pad (n, h, w) at the bottom/right to (n, *shape) (crop when larger)."""
    if tuple(x.shape[-2:]) == tuple(shape):
        return x
    out = x.new_full((x.size(0), *shape), value)
    h, w = min(x.shape[-2], shape[0]), min(x.shape[-1], shape[1])
    out[:, :h, :w] = x[:, :h, :w]
    return out


def stuff_targets(sem_seg: Tensor, num_things: int, num_classes: int) -> Tuple[Tensor, Tensor]:
    """One mask per stuff class present in a semantic map.

    Args:
        sem_seg (Tensor): (H, W) contiguous labels, things ``[0, num_things)``, stuff
            ``[num_things, num_classes)``; anything else (255 = void) is ignored.
        num_things (int): Number of thing classes.
        num_classes (int): Things + stuff.

    Returns:
        tuple: ``labels`` (n,) long sorted ascending, ``masks`` (n, H, W) bool.
    """
    present = sem_seg.unique().long()
    labels = present[(present >= num_things) & (present < num_classes)]
    return labels, sem_seg[None] == labels[:, None, None]


class MaskDINOLossMixin:
    """The training half of :class:`MaskDINOHead` (kept apart so the head file reads as the model)."""

    def _init_losses(self, loss_cls: ConfigType, loss_bbox: ConfigType, loss_iou: ConfigType,
                     loss_mask: ConfigType, loss_dice: ConfigType, train_cfg: dict) -> None:
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_iou = MODELS.build(loss_iou)
        self.loss_mask = MODELS.build(loss_mask)
        self.loss_dice = MODELS.build(loss_dice)
        self.assigner = TASK_UTILS.build(train_cfg.get('assigner', DEFAULT_ASSIGNER))
        self.num_points = train_cfg.get('num_points', 12544)
        self.oversample_ratio = train_cfg.get('oversample_ratio', 3.0)
        self.importance_sample_ratio = train_cfg.get('importance_sample_ratio', 0.75)

    # ---------------------------------------------------------------- targets
    def get_targets(self, batch_data_samples: SampleList) -> List[_Targets]:
        """GT labels, boxes and masks of every image, in the padded-batch frame.

        Things come from ``gt_instances`` (``labels``, ``masks``); with stuff classes
        (``num_stuff_classes > 0``) every stuff class present in ``gt_sem_seg`` (contiguous labels,
        things first, 255 = void) adds one mask, as in MaskFormer. Boxes are derived from the masks
        for things and stuff alike (upstream's dataset mappers do the same), so GT boxes always
        agree with the masks after cropping.
        """
        targets = []
        for sample in batch_data_samples:
            pad_shape = tuple(sample.metainfo['batch_input_shape'])
            gt = sample.get('gt_instances', InstanceData())  # semantic datasets may have none
            device = self.cls_branch.weight.device
            if 'labels' in gt and len(gt) > 0:
                labels = gt.labels.long()
                masks = _pad_to(gt.masks.to_tensor(torch.bool, device), pad_shape, False)
            else:
                labels = torch.zeros(0, dtype=torch.long, device=device)
                masks = torch.zeros((0, *pad_shape), dtype=torch.bool, device=device)
            if self.num_stuff_classes > 0 and 'gt_sem_seg' in sample:
                sem_seg = _pad_to(sample.gt_sem_seg.sem_seg.to(device), pad_shape, 255)[0]
                stuff_labels, stuff_masks = stuff_targets(sem_seg, self.num_things_classes,
                                                          self.num_classes)
                labels = torch.cat([labels, stuff_labels])
                masks = torch.cat([masks, stuff_masks])
            boxes = mask2bbox(masks)
            targets.append(_Targets(labels, boxes, masks.float(), pad_shape))
        return targets

    def box_supervised(self, labels: Tensor) -> Tensor:
        """Which targets supervise boxes (and steer box match costs via ``ThingBoxCost``).

        All of them, except in a panoptic model (thing and stuff classes), where only things do,
        as upstream: a stuff region's box is not a detection target. A semantic model (stuff only)
        supervises every box.

        Args:
            labels (Tensor): (n,) target labels.

        Returns:
            Tensor: (n,) bool.
        """
        if self.num_things_classes == 0 or self.num_stuff_classes == 0:
            return torch.ones_like(labels, dtype=torch.bool)
        return labels < self.num_things_classes

    # ---------------------------------------------------------------- matching
    @torch.no_grad()
    def match(self, logits: Tensor, boxes: Tensor, masks: Tensor, target: _Targets) -> Tensor:
        """Hybrid Hungarian matching of one image (fp32).

        Args:
            logits (Tensor): (nq, C) class logits.
            boxes (Tensor): (nq, 4) sigmoided normalised cxcywh (padded frame).
            masks (Tensor): (nq, h, w) mask logits.
            target (_Targets): The image's GT.

        Returns:
            Tensor: (2, num_matched) long: query indices and GT indices.
        """
        if len(target) == 0:
            return logits.new_zeros((2, 0), dtype=torch.long)
        h, w = target.pad_shape
        points = torch.rand((1, self.num_points, 2), device=logits.device)
        pred_points = point_sample(masks[:, None].float(),
                                   points.expand(masks.size(0), -1, -1)).squeeze(1)
        gt_points = point_sample(target.masks[:, None],
                                 points.expand(len(target), -1, -1)).squeeze(1)
        scale = boxes.new_tensor([w, h, w, h])
        pred = InstanceData(scores=logits.float(), masks=pred_points,
                            bboxes=bbox_cxcywh_to_xyxy(boxes.float()) * scale)
        gt = InstanceData(labels=target.labels, bboxes=target.boxes, masks=gt_points,
                          is_thing=self.box_supervised(target.labels))
        result = self.assigner.assign(pred, gt, img_meta=dict(img_shape=(h, w)))
        query = torch.nonzero(result.gt_inds > 0, as_tuple=False).squeeze(1)
        return torch.stack([query, result.gt_inds[query] - 1])

    # ---------------------------------------------------------------- losses
    def loss(self, x: Sequence[Tensor], batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Forward with denoising queries and return every loss (final, aux, interm, DN)."""
        targets = self.get_targets(batch_data_samples)
        dn = self.dn_generator(self._dn_samples(targets)) \
            if self.dn_generator is not None else None
        out = self(x, dn)
        num_gt = sum(len(t) for t in targets)
        num_gt = max(reduce_mean(out['pred_logits'].new_tensor(float(num_gt))).item(), 1.0)

        losses = {}
        sets = [('', out)] + [(f'd{i}.', aux) for i, aux in enumerate(out['aux_outputs'])]
        if out['interm_outputs'] is not None:
            sets.append(('interm.', out['interm_outputs']))
        for prefix, pred in sets:
            indices = [self.match(pred['pred_logits'][b], pred['pred_boxes'][b],
                                  pred['pred_masks'][b], t) for b, t in enumerate(targets)]
            for k, v in self.loss_single(pred, targets, indices, num_gt).items():
                losses[prefix + k] = v
        if self.dn_generator is not None:
            losses.update(self.dn_losses(out, dn, targets, num_gt))
        return losses

    def dn_losses(self, out: dict, dn: Optional[DnQueries], targets: List[_Targets],
                  num_gt: float) -> Dict[str, Tensor]:
        """Denoising losses (``dn.*``), normalised by ``num_gt * num_groups``.

        A batch without GT has no DN queries; it still returns every ``dn.*`` key, as exact zeros
        that touch the label embedding, so all ranks of a DDP job use the same parameters and log
        the same keys.
        """
        num_sets = len(out['aux_outputs']) + 1
        prefixes = [f'dn.d{i}.' for i in range(num_sets - 1)] + ['dn.']
        names = ('loss_cls', 'loss_bbox', 'loss_iou', 'loss_mask', 'loss_dice')
        if dn is None:
            zero = out['pred_logits'].sum() * 0 + \
                self.dn_generator.label_embedding.weight.sum() * 0
            return {p + n: zero for p in prefixes for n in names}
        indices = dn.positive_indices([len(t) for t in targets])
        losses = {}
        for prefix, pred in zip(prefixes, out['dn_outputs']):
            for k, v in self.loss_single(pred, targets, indices, num_gt * dn.num_groups).items():
                losses[prefix + k] = v
        return losses

    @staticmethod
    def _dn_samples(targets: List[_Targets]) -> SampleList:
        """Samples holding the targets (things and stuff) with ``img_shape`` = the padded batch
        shape, the frame of every box here: what the DN generator noises."""
        out = []
        for t in targets:
            sample = DetDataSample(metainfo=dict(img_shape=t.pad_shape))
            sample.gt_instances = InstanceData(labels=t.labels, bboxes=t.boxes)
            out.append(sample)
        return out

    def loss_single(self, pred: Dict[str, Optional[Tensor]], targets: List[_Targets],
                    indices: List[Tensor], num_gt: float) -> Dict[str, Tensor]:
        """Losses of one prediction set given the matching ``indices`` (query, gt) per image."""
        logits, boxes, masks = pred['pred_logits'], pred['pred_boxes'], pred['pred_masks']
        bs, nq, channels = logits.shape
        labels = logits.new_full((bs, nq), self.num_classes, dtype=torch.long)
        for b, (idx, t) in enumerate(zip(indices, targets)):
            labels[b, idx[0]] = t.labels[idx[1]]
        labels = labels.reshape(-1)
        if self.use_sigmoid_cls:  # focal: normalised by the number of GT
            cls_avg = num_gt
        else:  # CE: the weighted mean over queries (no-object weight in class_weight)
            class_weight = self.loss_cls.class_weight or [1.0] * channels
            cls_avg = logits.new_tensor(class_weight)[labels].sum()
        loss_cls = self.loss_cls(logits.reshape(-1, channels).float(), labels,
                                 avg_factor=cls_avg)

        batch_idx = torch.cat([torch.full_like(idx[0], b) for b, idx in enumerate(indices)])
        query_idx = torch.cat([idx[0] for idx in indices])
        if query_idx.numel() == 0:  # no GT in the batch: exact zeros that keep the graph
            zero = boxes.sum() * 0 + (masks.sum() * 0 if masks is not None else 0)
            return dict(loss_cls=loss_cls, loss_bbox=zero, loss_iou=zero, loss_mask=zero,
                        loss_dice=zero)
        gt_labels = torch.cat([t.labels[idx[1]] for idx, t in zip(indices, targets)])
        gt_boxes = torch.cat([t.norm_cxcywh[idx[1]] for idx, t in zip(indices, targets)])
        src_boxes = boxes[batch_idx, query_idx].float()
        with_box = self.box_supervised(gt_labels)  # stuff boxes are not supervised (panoptic)
        src_boxes, gt_boxes = src_boxes[with_box], gt_boxes[with_box]
        if with_box.any():
            loss_bbox = self.loss_bbox(src_boxes, gt_boxes, avg_factor=num_gt)
            loss_iou = self.loss_iou(bbox_cxcywh_to_xyxy(src_boxes),
                                     bbox_cxcywh_to_xyxy(gt_boxes), avg_factor=num_gt)
        else:
            loss_bbox = loss_iou = boxes.sum() * 0
        gt_masks = torch.cat([t.masks[idx[1]] for idx, t in zip(indices, targets)])
        loss_mask, loss_dice = self.mask_losses(masks[batch_idx, query_idx].float(), gt_masks,
                                                num_gt)
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox, loss_iou=loss_iou,
                    loss_mask=loss_mask, loss_dice=loss_dice)

    def mask_losses(self, pred_masks: Tensor, gt_masks: Tensor,
                    num_gt: float) -> Tuple[Tensor, Tensor]:
        """Point-sampled BCE and dice with importance sampling (PointRend / Mask2Former).

        Args:
            pred_masks (Tensor): (n, h, w) matched mask logits (1/4 of the padded batch).
            gt_masks (Tensor): (n, H_pad, W_pad) their GT masks.
            num_gt (float): Normaliser.
        """
        with torch.no_grad():
            points = get_uncertain_point_coords_with_randomness(
                pred_masks[:, None], None, self.num_points, self.oversample_ratio,
                self.importance_sample_ratio)
            gt_points = point_sample(gt_masks[:, None], points).squeeze(1)
        pred_points = point_sample(pred_masks[:, None], points).squeeze(1)
        loss_dice = self.loss_dice(pred_points, gt_points, avg_factor=num_gt)
        loss_mask = self.loss_mask(pred_points.reshape(-1), gt_points.reshape(-1),
                                   avg_factor=num_gt * self.num_points)
        return loss_mask, loss_dice
