"""Mask DINO's panoptic and semantic inference as pure functions (MaskFormer-style fusion)."""
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from mmdet.evaluation.functional import INSTANCE_OFFSET

#: Maps (n, h, w) mask logits to (n, H_out, W_out) mask logits.
ResizeFn = Callable[[Tensor], Tensor]


def class_probabilities(cls_logits: Tensor, num_classes: int,
                        temperature: Optional[float] = 0.06) -> Tensor:
    """Per-query class distribution used by panoptic and semantic inference.

    Focal-trained models (``num_classes`` logits): ``softmax(sigmoid(logits) / temperature)``
    (upstream's ``PANO_TRANSFORM_EVAL`` re-scoring; ``temperature=None`` keeps ``sigmoid``).
    CE-trained models (``num_classes + 1`` logits, the last one no-object):
    ``softmax(logits)`` without the no-object column.

    Args:
        cls_logits (Tensor): (Q, num_classes) or (Q, num_classes + 1) class logits.
        num_classes (int): Things + stuff.
        temperature (float, optional): Re-scoring temperature of the sigmoid models.

    Returns:
        Tensor: (Q, num_classes) probabilities.
    """
    if cls_logits.size(-1) == num_classes + 1:
        return F.softmax(cls_logits.float(), dim=-1)[:, :num_classes]
    if cls_logits.size(-1) != num_classes:
        raise ValueError(f'expected {num_classes} or {num_classes + 1} class logits, got '
                         f'{cls_logits.size(-1)}')
    probs = cls_logits.float().sigmoid()
    return probs if temperature is None else F.softmax(probs / temperature, dim=-1)


def panoptic_keep_scores(cls_logits: Tensor, num_classes: int) -> Optional[Tensor]:
    """The per-query scores panoptic inference thresholds, as upstream.

    Sigmoid (focal) models: ``sigmoid(logits).max(-1)``, before the temperature re-scoring of
    :func:`class_probabilities`. CE models (``num_classes + 1`` logits): ``None``, i.e. threshold the
    softmax probabilities themselves (MaskFormer's rule).

    Args:
        cls_logits (Tensor): (Q, num_classes) or (Q, num_classes + 1) class logits.
        num_classes (int): Things + stuff.

    Returns:
        Tensor | None: (Q,) scores, or None for CE models.
    """
    if cls_logits.size(-1) == num_classes + 1:
        return None
    return cls_logits.float().sigmoid().max(-1).values


def maskdino_panoptic_postprocess(cls_probs: Tensor, mask_logits: Tensor, num_things: int,
                                  out_shape: tuple, resize: ResizeFn,
                                  object_mask_thr: float = 0.25, iou_thr: float = 0.8,
                                  mask_prob_thr: float = 0.5,
                                  keep_scores: Optional[Tensor] = None) -> Tensor:
    """Panoptic segmentation of one image.

    Keep queries whose ``keep_scores`` (default: their best class probability) exceed
    ``object_mask_thr``; the segment scores and labels come from ``cls_probs``. Each pixel goes to the
    kept query with the largest ``score x mask prob``; a query's segment is those pixels where its
    own mask prob is ``>= mask_prob_thr``; it is dropped when the pixels it won cover less than
    ``iou_thr`` of its own mask (``prob >= mask_prob_thr``), or when its segment is empty. Thing
    segments get ``label + instance_id * INSTANCE_OFFSET`` (ids from 1); stuff segments of one class
    are merged (``label``, instance id 0); unassigned pixels are ``num_classes`` (VOID), the
    encoding of mmdet's ``CocoPanopticMetric``.

    Only the kept queries' masks are resized to the output.

    Args:
        cls_probs (Tensor): (Q, C) class probabilities (see :func:`class_probabilities`).
        mask_logits (Tensor): (Q, h, w) mask logits.
        num_things (int): Labels below it are things.
        out_shape (tuple): ``(H, W)`` of the output.
        resize (callable): Maps (n, h, w) mask logits to (n, H, W).
        object_mask_thr (float): Query score threshold (upstream 0.25).
        iou_thr (float): Minimum kept fraction of a query's mask (upstream 0.8).
        mask_prob_thr (float): Mask probability threshold (0.5).
        keep_scores (Tensor, optional): (Q,) the scores thresholded by ``object_mask_thr``. Upstream's
            sigmoid models threshold ``sigmoid(logits).max(-1)`` (:func:`panoptic_keep_scores`), not the
            re-scored ``cls_probs``: a query with sigmoid 0.95 spread over several classes can have a
            re-scored maximum below 0.25 and is still kept.

    Returns:
        Tensor: (H, W) int32 panoptic ids.
    """
    num_classes = cls_probs.size(1)
    scores, labels = cls_probs.max(-1)
    keep = (scores if keep_scores is None else keep_scores) > object_mask_thr
    panoptic = torch.full(tuple(out_shape), num_classes, dtype=torch.int32,
                          device=cls_probs.device)
    if not keep.any():
        return panoptic
    scores, labels = scores[keep], labels[keep]
    n = scores.numel()
    masks = resize(mask_logits[keep]).sigmoid()
    winner = (scores[:, None, None] * masks).argmax(0)  # (H, W)
    own = masks >= mask_prob_thr  # (n, H, W)
    # per query: pixels it owns, pixels it won, pixels it won and owns (its segment)
    own_area = own.flatten(1).sum(1)
    won_area = torch.bincount(winner.flatten(), minlength=n)
    in_segment = own.gather(0, winner[None])[0]  # the winner's own mask holds the pixel
    segment_area = torch.bincount(winner[in_segment], minlength=n)
    covered = won_area.double() / own_area.clamp(min=1).double()  # as Python's int / int
    kept = (own_area > 0) & (segment_area > 0) & (covered >= iou_thr)
    # segment ids in query order: things numbered from 1 in that order, stuff merged per class
    is_thing = labels < num_things
    instance_id = torch.cumsum(kept & is_thing, 0)
    segment_id = torch.where(is_thing, labels + instance_id * INSTANCE_OFFSET, labels)
    segment_id = torch.where(kept, segment_id, num_classes).to(torch.int32)
    assigned = segment_id[winner]
    return torch.where(in_segment, assigned, panoptic)


def maskdino_semantic_postprocess(cls_probs: Tensor, mask_logits: Tensor,
                                  resize: ResizeFn, chunk_size: int = 16) -> Tensor:
    """Semantic scores of one image: ``sum_q cls_probs[q, c] * sigmoid(mask_q)`` at the output size.

    Computed over chunks of queries, so memory is (C + chunk_size) x H x W instead of upstream's
    Q x H x W (the same numbers: the resize runs on each query's logits, as upstream).

    Args:
        cls_probs (Tensor): (Q, C) class probabilities (see :func:`class_probabilities`).
        mask_logits (Tensor): (Q, h, w) mask logits.
        resize (callable): Maps (n, h, w) mask logits to (n, H, W).
        chunk_size (int): Queries resized at once.

    Returns:
        Tensor: (C, H, W) float scores; ``argmax(0)`` is the semantic segmentation.
    """
    scores = None
    for start in range(0, mask_logits.size(0), chunk_size):
        masks = resize(mask_logits[start:start + chunk_size]).float().sigmoid()
        part = torch.einsum('qc,qhw->chw', cls_probs[start:start + chunk_size].float(), masks)
        scores = part if scores is None else scores + part
    return scores
