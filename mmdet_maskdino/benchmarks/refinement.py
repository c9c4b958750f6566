"""How much each decoder layer refines boxes: the denoising queries' boxes, layer by layer.

A denoising query starts from a noised GT box and should end closer to its GT after every layer;
a matching query starts from its anchor (mask-enhanced or regressed). :func:`refinement_table`
measures, for every prediction set of a training forward (the input anchors, then each layer),
the mean L1 (normalised cxcywh) and mean IoU of DN queries against their GT boxes, and of the
matching queries that the last layer matches.
"""
from typing import Dict, List

import torch
from torch import Tensor

from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_overlaps
from ..models.utils import HeadOutputs, PredictionSets, SegTargets, targets_as_samples


def pair_box_errors(sets: PredictionSets, targets: List[SegTargets],
                    indices: List[Tensor]) -> List[Dict[str, float]]:
    """Mean L1 and IoU of every set's boxes against the GT of given pairs.

    Args:
        sets (PredictionSets): (num_sets, bs, nq, ...) predictions.
        targets (list[SegTargets]): One per image.
        indices (list[Tensor]): Per image, (2, m) ``(query index, gt index)``.

    Returns:
        list[dict]: Per set, ``l1`` and ``iou`` averaged over the pairs (NaN without pairs).
    """
    gt = torch.cat([t.norm_cxcywh[idx[1]] for t, idx in zip(targets, indices)]).float()
    out = []
    for s in range(len(sets)):
        boxes = torch.cat([sets.boxes[s, b, idx[0]] for b, idx in enumerate(indices)]).float()
        if boxes.numel() == 0:
            out.append(dict(l1=float('nan'), iou=float('nan')))
            continue
        iou = bbox_overlaps(bbox_cxcywh_to_xyxy(boxes), bbox_cxcywh_to_xyxy(gt), is_aligned=True)
        out.append(dict(l1=(boxes - gt).abs().sum(-1).mean().item(), iou=iou.mean().item()))
    return out


@torch.no_grad()
def refinement_table(model, batch: dict) -> Dict[str, List[Dict[str, float]]]:
    """Per prediction set (input anchors, then each layer) of one training batch.

    Args:
        model: A :class:`MaskDINO` with denoising (the head in training mode is used, without
            gradient).
        batch (dict): A preprocessed training batch (``inputs``, ``data_samples``).

    Returns:
        dict: ``dn`` and ``matching``: per set, mean ``l1`` and ``iou`` (see
        :func:`pair_box_errors`); the matching pairs are the last layer's matching.
    """
    head = model.panoptic_head
    was_training = head.training
    head.train()
    samples: SampleList = batch['data_samples']
    targets = head.get_targets(samples)
    dn = head.dn_generator(targets_as_samples(targets))
    outputs: HeadOutputs = head(model.extract_feat(batch['inputs']), dn)
    head.train(was_training)
    features_hwc = outputs.mask_features.float().permute(0, 2, 3, 1).contiguous()
    last = head.criterion.match(outputs.layers[-1], features_hwc, targets)
    return dict(dn=pair_box_errors(outputs.dn, targets,
                                   dn.positive_indices([len(t) for t in targets])),
                matching=pair_box_errors(outputs.layers, targets, last))
