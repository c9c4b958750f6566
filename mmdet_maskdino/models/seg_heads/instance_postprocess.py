"""Mask DINO's instance inference as a pure function."""
from typing import Tuple

import torch
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet.structures.bbox import bbox_cxcywh_to_xyxy


def maskdino_instance_postprocess(cls_logits: Tensor, mask_logits: Tensor, boxes: Tensor,
                                  pad_shape: Tuple[int, int], img_shape: Tuple[int, int],
                                  out_shape: Tuple[int, int], max_per_image: int = 100,
                                  mask_thr: float = 0.0) -> InstanceData:
    """Top-k instances of one image.

    ``scores = sigmoid(cls)`` over queries x classes; keep the top ``max_per_image`` (label =
    index % C, query = index // C); a mask is ``logit > mask_thr``; the final score is the class
    probability times the mean sigmoid mask probability inside the mask. Boxes are the **predicted**
    boxes (not derived from masks), mapped from the padded frame to ``out_shape`` (not clipped).

    Args:
        cls_logits (Tensor): (Q, C) class logits.
        mask_logits (Tensor): (Q, H_out, W_out) mask logits already resized to the output size.
        boxes (Tensor): (Q, 4) sigmoided cxcywh normalised w.r.t. the padded batch.
        pad_shape (tuple): ``(H_pad, W_pad)`` of the padded batch.
        img_shape (tuple): ``(h, w)`` of the (resized, unpadded) network input.
        out_shape (tuple): ``(H_out, W_out)`` of the output (original) image.
        max_per_image (int): Number of instances kept.
        mask_thr (float): Logit threshold of the binary masks.

    Returns:
        InstanceData: ``scores`` (k,), ``labels`` (k,), ``bboxes`` (k, 4) absolute xyxy in the output
        frame, ``masks`` (k, H_out, W_out) bool.
    """
    num_queries, num_classes = cls_logits.shape
    k = min(max_per_image, num_queries * num_classes)
    class_scores, index = cls_logits.sigmoid().flatten().topk(k, sorted=True)
    labels = index % num_classes
    query = index // num_classes
    masks = mask_logits[query]
    binary = masks > mask_thr
    mask_scores = (masks.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    (h_pad, w_pad), (h, w), (h_out, w_out) = pad_shape, img_shape, out_shape
    scale = boxes.new_tensor([w_pad * w_out / w, h_pad * h_out / h] * 2)
    results = InstanceData()
    results.scores = class_scores * mask_scores
    results.labels = labels
    results.bboxes = bbox_cxcywh_to_xyxy(boxes[query]) * scale
    results.masks = binary
    results.query_index = query
    return results
