"""Patch localisation AP: how well the pretext finds its query patches (COCO AP, pycocotools)."""
from typing import List, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mmdet.registry import METRICS
from mmdet.structures.bbox import bbox_overlaps


@METRICS.register_module()
class PatchLocalisationMetric(BaseMetric):
    """COCO box AP of the predicted patch boxes against the sampled patch boxes.

    The ground truth is each image's ``gt_instances.bboxes`` (the patches, from a fixed-seed
    :class:`SampleQueryPatches` in the validation pipeline); predictions are every query's box
    and score. Two views:

    * ``AP`` / ``AP50`` / ``AP75``: per image, all queries against all its patches (are the
      patches found?);
    * ``AP_own`` / ``AP50_own``: each patch with only the queries of its own group (is *this*
      patch found by the queries it was given? UP-DETR's conditioning).

    Chance level is what the untrained model (its learnable anchors) gets: the README reports it.
    """

    default_prefix = 'patch'

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred, gt = sample['pred_instances'], sample['gt_instances']
            scale = np.asarray(tuple(sample.get('scale_factor', (1.0, 1.0))) * 2, np.float32)
            gt_boxes = gt['bboxes']
            gt_boxes = getattr(gt_boxes, 'tensor', gt_boxes)  # HorizontalBoxes or a tensor
            self.results.append(dict(
                gt=gt_boxes.cpu().numpy() / scale,
                boxes=pred['bboxes'].cpu().numpy(), scores=pred['scores'].cpu().numpy(),
                group=pred['patch_index'].cpu().numpy()))

    def compute_metrics(self, results: List[dict]) -> dict:
        stats = _coco_ap(results, per_patch=False)
        own = _coco_ap(results, per_patch=True)
        return dict(AP=stats[0], AP50=stats[1], AP75=stats[2], AP_own=own[0], AP50_own=own[1])


def _coco_ap(results: List[dict], per_patch: bool) -> List[float]:
    """pycocotools' box AP stats; with ``per_patch`` every (image, patch) is its own image."""
    images, annotations, detections = [], [], []
    for r in results:
        for k in (range(len(r['gt'])) if per_patch else [None]):
            image_id = len(images) + 1
            images.append(dict(id=image_id))
            for box in (r['gt'] if k is None else r['gt'][k:k + 1]):
                annotations.append(_ann(len(annotations) + 1, image_id, box, 1.0))
            chosen = slice(None) if k is None else r['group'] == k
            for box, score in zip(r['boxes'][chosen], r['scores'][chosen]):
                detections.append(_ann(len(detections) + 1, image_id, box, float(score)))
    gt = COCO()
    gt.dataset = dict(images=images, annotations=annotations,
                      categories=[dict(id=1, name='patch')])
    gt.createIndex()
    if not detections:
        return [0.0] * 12
    evaluator = COCOeval(gt, gt.loadRes(detections), 'bbox')
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return [float(v) for v in evaluator.stats]


def _ann(ann_id: int, image_id: int, xyxy, score: float) -> dict:
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    return dict(id=ann_id, image_id=image_id, category_id=1, bbox=[x0, y0, x1 - x0, y1 - y0],
                area=(x1 - x0) * (y1 - y0), iscrowd=0, score=score)


def own_group_ious(boxes: torch.Tensor, group: torch.Tensor, patches: torch.Tensor,
                   shift: int = 0) -> torch.Tensor:
    """Best IoU of group ``k``'s boxes with patch ``(k + shift) % num_patches``, for every ``k``.

    Args:
        boxes (Tensor): (num_queries, 4) xyxy predicted boxes.
        group (Tensor): (num_queries,) the group (patch index) of every query.
        patches (Tensor): (num_patches, 4) xyxy patch boxes.
        shift (int): 0: each group with its own patch.

    Returns:
        Tensor: (num_patches,) IoUs.
    """
    ious = bbox_overlaps(boxes, patches)
    n = len(patches)
    return torch.stack([ious[group == k, (k + shift) % n].max() for k in range(n)])

