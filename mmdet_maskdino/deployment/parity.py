"""How far two runtimes' predictions agree, instance by instance (e.g. fp32 against int8).

Raw outputs of a quantised graph differ from fp32 by more than float tolerance, and query selection
may pick other encoder tokens, so their (query-ordered) outputs cannot be compared one to one. What a
user sees is the post-processed instances: for each image, the ``top_k`` highest-scoring reference
instances are paired with the other run's instance of the same label that overlaps them most (box
IoU), and the agreement is summarised over all images.
"""
from typing import Dict, List, Sequence

import numpy as np
import torch
from mmdet.structures.bbox import bbox_overlaps

__all__ = ['instance_agreement']


def _instances(result) -> dict:
    """``pred_instances`` of a dumped result (``tools/test.py --out``) or a ``DetDataSample``."""
    pred = result['pred_instances'] if isinstance(result, dict) else result.pred_instances
    get = pred.get if isinstance(pred, dict) else (lambda k: getattr(pred, k))
    return {k: torch.as_tensor(get(k)) for k in ('bboxes', 'scores', 'labels')}


def instance_agreement(reference: Sequence, other: Sequence, top_k: int = 10) -> Dict[str, float]:
    """Agreement of ``other``'s instances with ``reference``'s, image by image.

    Args:
        reference (sequence): Results per image (dicts with ``img_id`` and ``pred_instances``
            holding ``bboxes`` (n, 4), ``scores`` (n,), ``labels`` (n,), as ``tools/test.py
            --out`` dumps them).
        other (sequence): The other run's results (matched to ``reference`` by ``img_id``).
        top_k (int): Reference instances compared per image (highest scores).

    Returns:
        dict: ``instances`` compared; ``iou_median``, ``iou_ge_0.9`` and ``iou_ge_0.5`` (fractions)
        of the best same-label box IoU in ``other`` (0 when it has no instance of that label);
        ``score_diff_median``, ``score_diff_p95``, ``score_diff_max``: absolute score differences
        to that instance (the reference score itself where none overlaps).

    Raises:
        KeyError: If an image of ``reference`` is missing from ``other``.
    """
    others = {r['img_id']: r for r in other}
    ious: List[float] = []
    diffs: List[float] = []
    for result in reference:
        if result['img_id'] not in others:
            raise KeyError(f"image {result['img_id']} has no result in the other run")
        ref, oth = _instances(result), _instances(others[result['img_id']])
        order = ref['scores'].argsort(descending=True)[:top_k]
        if not len(order):
            continue
        if not len(oth['scores']):
            ious += [0.0] * len(order)
            diffs += ref['scores'][order].tolist()
            continue
        overlap = bbox_overlaps(ref['bboxes'][order].float(), oth['bboxes'].float())
        overlap = overlap * (ref['labels'][order, None] == oth['labels'][None])
        best, index = overlap.max(1)
        ious += best.tolist()
        score = ref['scores'][order]  # unpaired (no overlapping same-label instance): all of it
        diffs += torch.where(best > 0, (score - oth['scores'][index]).abs(), score).tolist()
    if not ious:
        raise ValueError('instance_agreement: the reference run has no instance')
    iou, diff = np.asarray(ious), np.asarray(diffs)
    return {'instances': float(len(iou)), 'iou_median': float(np.median(iou)),
            'iou_ge_0.9': float(np.mean(iou >= 0.9)), 'iou_ge_0.5': float(np.mean(iou >= 0.5)),
            'score_diff_median': float(np.median(diff)),
            'score_diff_p95': float(np.percentile(diff, 95)),
            'score_diff_max': float(diff.max())}
