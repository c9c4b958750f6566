"""Unified denoising: noised ground-truth boxes/labels as extra decoder queries."""
from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import Tensor

from mmdet.models.layers.transformer import CdnQueryGenerator
from mmdet.models.layers.transformer.utils import inverse_sigmoid
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox_xyxy_to_cxcywh


@dataclass
class DnQueries:
    """Denoising queries of one batch and how they map to the ground truth.

    Attributes:
        query (Tensor): (bs, num_dn, embed_dims) label embeddings of the noised labels.
        ref_unsig (Tensor): (bs, num_dn, 4) inverse-sigmoid noised boxes, normalised cxcywh w.r.t.
            each image's ``img_shape``.
        attn_mask (Tensor): (num_dn + num_queries, num_dn + num_queries) bool, True = blocked.
        num_groups (int): Denoising groups in this batch.
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
    mask[num_dn:, :num_dn] = True
    group = torch.arange(num_dn, device=device) // group_size
    mask[:num_dn, :num_dn] = group[:, None] != group[None, :]
    return mask


class MaskDINODnQueryGenerator(CdnQueryGenerator):
    """DN-DETR style positive-only denoising queries (Mask DINO), CDN negatives as an option.

    Positive-only (default, as upstream Mask DINO): ``num_groups = num_dn_queries // max_num_gt``
    groups (none when the batch has no GT); in each, a fraction ``label_noise_scale / 2`` of labels is
    replaced by a random class, and boxes get noise in normalised cxcywh:
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

    def __call__(self, batch_data_samples: SampleList) -> Optional[DnQueries]:
        """Build the DN queries of a batch; ``None`` when no image has a GT box.

        GT boxes are read from ``gt_instances.bboxes`` (absolute xyxy) and normalised by
        ``img_shape``.
        """
        num_gts = [len(s.gt_instances) for s in batch_data_samples]
        if max(num_gts, default=0) == 0:
            return None
        if self.contrastive:
            label_q, box_q, attn_mask, meta = super().__call__(batch_data_samples)
            groups = meta['num_denoising_groups']
            return DnQueries(label_q, box_q, attn_mask, groups,
                             meta['num_denoising_queries'] // groups, contrastive=True)
        return self._positive_queries(batch_data_samples, num_gts)

    def _positive_queries(self, batch_data_samples: SampleList, num_gts: List[int]) -> DnQueries:
        max_gt = max(num_gts)
        groups = self.get_num_groups(max_gt)
        device = self.label_embedding.weight.device
        bs = len(batch_data_samples)
        query = torch.zeros(bs, groups * max_gt, self.embed_dims, device=device)
        ref = torch.zeros(bs, groups * max_gt, 4, device=device)
        for b, sample in enumerate(batch_data_samples):
            n = num_gts[b]
            if n == 0:
                continue
            h, w = sample.img_shape[:2]
            boxes = bbox_xyxy_to_cxcywh(sample.gt_instances.bboxes.to(device) /
                                        ref.new_tensor([w, h, w, h]))
            labels = self._noise_labels(sample.gt_instances.labels.to(device).repeat(groups))
            boxes = self._noise_boxes(boxes.repeat(groups, 1))
            index = (torch.arange(groups, device=device).repeat_interleave(n) * max_gt +
                     torch.arange(n, device=device).repeat(groups))
            query[b, index] = self.label_embedding(labels)
            ref[b, index] = inverse_sigmoid(boxes, eps=1e-5)
        mask = build_dn_attn_mask(groups, max_gt, self.num_matching_queries, device)
        return DnQueries(query, ref, mask, groups, max_gt)

    def _noise_labels(self, labels: Tensor) -> Tensor:
        if self.label_noise_scale <= 0:
            return labels
        flip = torch.rand(labels.shape, device=labels.device) < self.label_noise_scale * 0.5
        random_labels = torch.randint_like(labels, 0, self.num_classes)
        return torch.where(flip, random_labels, labels)

    def _noise_boxes(self, boxes: Tensor) -> Tensor:
        """Noise normalised cxcywh boxes (N, 4); see the class docstring."""
        if self.box_noise_scale <= 0:
            return boxes
        scale = torch.cat([boxes[:, 2:] / 2, boxes[:, 2:]], -1)
        noise = (torch.rand_like(boxes) * 2 - 1) * scale * self.box_noise_scale
        return (boxes + noise).clamp(0.0, 1.0)
