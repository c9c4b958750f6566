"""Unified denoising: noised ground-truth boxes/labels as extra decoder queries."""
from dataclasses import dataclass
from typing import List

import torch
from torch import Tensor

from mmdet.models.layers.transformer import CdnQueryGenerator
from mmdet.models.layers.transformer.utils import inverse_sigmoid
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox_xyxy_to_cxcywh, get_box_tensor


@dataclass
class DnQueries:
    """Denoising queries of one batch and how they map to the ground truth.

    Attributes:
        query (Tensor): (bs, num_dn, embed_dims) label embeddings of the noised labels.
        ref_unsig (Tensor): (bs, num_dn, 4) inverse-sigmoid noised boxes, normalised cxcywh w.r.t.
            each image's ``img_shape``.
        attn_mask (Tensor): (num_dn + num_queries, num_dn + num_queries) bool, True = blocked.
        num_groups (int): Denoising groups in this batch (0 when it has no GT).
        group_size (int): Queries per group (max number of GT boxes over the batch; x2 with CDN).
        contrastive (bool): Whether each group also holds negative queries (second half).
    """
    query: Tensor
    ref_unsig: Tensor
    attn_mask: Tensor
    num_groups: int
    group_size: int
    contrastive: bool = False

    @property
    def num_queries(self) -> int:
        return self.query.size(1)

    def positive_indices(self, num_gts: List[int]) -> List[Tensor]:
        """Per image, the DN query index of GT ``j`` in group ``g`` (positives only).

        Returns:
            list[Tensor]: ``(query_index, gt_index)`` stacked as (2, num_groups * num_gt) long.
        """
        out = []
        device = self.query.device
        for n in num_gts:
            gt = torch.arange(n, device=device).repeat(self.num_groups)
            group = torch.arange(self.num_groups, device=device).repeat_interleave(n)
            out.append(torch.stack([group * self.group_size + gt, gt]))
        return out


def build_dn_attn_mask(num_groups: int, group_size: int, num_queries: int,
                       device: torch.device) -> Tensor:
    """The self-attention mask of DN-DETR: matching queries cannot see DN queries, and DN groups
    cannot see each other (DN queries can see the matching queries).

    Returns:
        Tensor: (num_dn + num_queries, num_dn + num_queries) bool, True = blocked, where
        ``num_dn = num_groups * group_size``.
    """
    num_dn = num_groups * group_size
    total = num_dn + num_queries
    mask = torch.zeros(total, total, dtype=torch.bool, device=device)
    if num_dn == 0:
        return mask
    mask[num_dn:, :num_dn] = True
    group = torch.arange(num_dn, device=device) // group_size
    mask[:num_dn, :num_dn] = group[:, None] != group[None, :]
    return mask


class MaskDINODnQueryGenerator(CdnQueryGenerator):
    """DN-DETR style positive-only denoising queries (Mask DINO), CDN negatives as an option.

    Positive-only (default, as upstream Mask DINO): ``num_groups = num_dn_queries // max_num_gt``
    groups (none when the batch has no GT; at least one, as mmdet's DINO, where upstream switches
    denoising off for a batch with more GT in one image than ``num_dn_queries``); in each, a
    fraction ``label_noise_scale / 2`` of labels is replaced by a random class, and boxes get noise
    in normalised cxcywh:
    ``(cx, cy) += U(-1, 1) * (w / 2, h / 2) * box_noise_scale``,
    ``(w, h) += U(-1, 1) * (w, h) * box_noise_scale``, clamped to [0, 1].

    With ``contrastive=True`` this is exactly mmdet's :class:`CdnQueryGenerator` (DINO: negatives,
    xyxy noise).

    Args:
        contrastive (bool): Use mmdet's contrastive denoising instead.
        **kwargs: :class:`CdnQueryGenerator` arguments (``num_classes``, ``embed_dims``,
            ``num_matching_queries``, ``label_noise_scale``, ``box_noise_scale``, ``group_cfg``).
    """

    def __init__(self, *, contrastive: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.contrastive = contrastive

    def __call__(self, batch_data_samples: SampleList) -> DnQueries:
        """Build the DN queries of a batch.

        GT boxes are read from ``gt_instances.bboxes`` (absolute xyxy) and normalised by
        ``img_shape``. A batch without GT gets zero DN queries (``num_groups == 0``) whose content
        still comes from the label embedding, so the embedding stays in the graph (DDP) and the
        DN losses are exact zeros.
        """
        num_gts = [len(s.gt_instances) for s in batch_data_samples]
        if max(num_gts, default=0) == 0:
            return self._no_queries(len(batch_data_samples))
        if self.contrastive:
            label_q, box_q, attn_mask, meta = super().__call__(batch_data_samples)
            groups = meta['num_denoising_groups']
            return DnQueries(label_q, box_q, attn_mask, groups,
                             meta['num_denoising_queries'] // groups, contrastive=True)
        return self._positive_queries(batch_data_samples, num_gts)

    def _no_queries(self, bs: int) -> DnQueries:
        weight = self.label_embedding.weight
        query = self.label_embedding(weight.new_zeros((bs, 0), dtype=torch.long))
        return DnQueries(query, weight.new_zeros((bs, 0, 4)),
                         build_dn_attn_mask(0, 0, self.num_matching_queries, weight.device), 0, 0)

    def _positive_queries(self, batch_data_samples: SampleList, num_gts: List[int]) -> DnQueries:
        """All groups of the batch at once.

        The K = groups x total GT noised entries are ordered group-major, then image, then GT
        (upstream's order); entry (g, b, j) goes to slot ``g * max_gt + j`` of image b, and slots
        of images with fewer GT stay padding (zero content, reference 0 = box (.5, .5, .5, .5)).
        """
        device = self.label_embedding.weight.device
        max_gt, bs = max(num_gts), len(batch_data_samples)
        groups = self.get_num_groups(max_gt)
        labels, boxes, batch_idx, gt_idx = [], [], [], []
        for b, sample in enumerate(batch_data_samples):
            h, w = sample.img_shape[:2]
            bboxes = get_box_tensor(sample.gt_instances.bboxes).to(device).float()
            boxes.append(bbox_xyxy_to_cxcywh(bboxes / bboxes.new_tensor([w, h, w, h])))
            labels.append(sample.gt_instances.labels.to(device))
            batch_idx.append(torch.full((num_gts[b], ), b, device=device))
            gt_idx.append(torch.arange(num_gts[b], device=device))
        total = sum(num_gts)
        group = torch.arange(groups, device=device).repeat_interleave(total)
        slot = group * max_gt + torch.cat(gt_idx).repeat(groups)
        batch_idx = torch.cat(batch_idx).repeat(groups)
        noised_labels = self._noise_labels(torch.cat(labels).repeat(groups))
        noised_boxes = self._noise_boxes(torch.cat(boxes).repeat(groups, 1))
        query = torch.zeros(bs, groups * max_gt, self.embed_dims, device=device)
        query = query.index_put((batch_idx, slot), self.label_embedding(noised_labels))
        ref = torch.zeros(bs, groups * max_gt, 4, device=device)
        ref[batch_idx, slot] = inverse_sigmoid(noised_boxes, eps=1e-5)
        mask = build_dn_attn_mask(groups, max_gt, self.num_matching_queries, device)
        return DnQueries(query, ref, mask, groups, max_gt)

    def _noise_labels(self, labels: Tensor) -> Tensor:
        """Replace a fraction ``label_noise_scale / 2`` of (K,) labels by random classes
        (possibly the same): one uniform draw per entry, one class draw per flipped entry."""
        if self.label_noise_scale <= 0:
            return labels
        flip = torch.rand_like(labels.float()) < self.label_noise_scale * 0.5
        labels = labels.clone()
        labels[flip] = torch.randint_like(labels[flip], 0, self.num_classes)
        return labels

    def _noise_boxes(self, boxes: Tensor) -> Tensor:
        """Noise normalised cxcywh boxes (K, 4); see the class docstring."""
        if self.box_noise_scale <= 0:
            return boxes
        scale = torch.cat([boxes[:, 2:] / 2, boxes[:, 2:]], -1)
        noise = (torch.rand_like(boxes) * 2 - 1) * scale * self.box_noise_scale
        return (boxes + noise).clamp(0.0, 1.0)
