"""Ground truth of a batch in the frame the head predicts in (pure functions)."""
from dataclasses import dataclass
from typing import List, Tuple

import torch
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet.structures import DetDataSample, SampleList
from mmdet.structures.bbox import bbox_xyxy_to_cxcywh, get_box_tensor
from mmdet.structures.mask import mask2bbox


@dataclass
class SegTargets:
    """Ground truth of one image in the padded-batch frame.

    Attributes:
        labels (Tensor): (n,) long, things ``[0, num_things)`` then stuff.
        boxes (Tensor): (n, 4) absolute xyxy in pixels of the padded batch.
        masks (Tensor): (n, H_pad, W_pad) bool (read at sampled points only).
        pad_shape (tuple): ``(H_pad, W_pad)``.
    """
    labels: Tensor
    boxes: Tensor
    masks: Tensor
    pad_shape: Tuple[int, int]

    def __len__(self) -> int:
        return self.labels.numel()

    @property
    def norm_cxcywh(self) -> Tensor:
        """(n, 4) cxcywh normalised by the padded batch size (the frame of predicted boxes)."""
        h, w = self.pad_shape
        return bbox_xyxy_to_cxcywh(self.boxes / self.boxes.new_tensor([w, h, w, h]))


def pad_to(x: Tensor, shape: Tuple[int, int], value) -> Tensor:
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


def build_targets(batch_data_samples: SampleList, num_things: int, num_classes: int,
                  device: torch.device) -> List[SegTargets]:
    """GT labels, boxes and masks of every image, in the padded-batch frame.

    Instances come from ``gt_instances`` in their order: ``labels``, ``masks`` and the pipeline's
    ``bboxes`` (as upstream, whose mapper boxes the polygons; with mmdet's LSJ
    ``RandomCrop(recompute_bbox=True)`` they are recomputed from the cropped masks). With stuff
    classes (``num_classes > num_things``), stuff segments are taken from ``gt_instances`` when
    they are there (:class:`LoadPanopticSegments`: every segment in the annotation's
    ``segments_info`` order, upstream's targets); otherwise every stuff class present in
    ``gt_sem_seg`` (contiguous labels, things first, 255 = void) adds one mask after the things,
    by class, as in MaskFormer, boxed from its mask (exclusive max), as are instances whose
    ``gt_instances`` carry no ``bboxes``.

    Args:
        batch_data_samples (list[DetDataSample]): With ``batch_input_shape`` in their metainfo.
        num_things (int): Thing classes.
        num_classes (int): Things + stuff.
        device (torch.device): Where the targets go.
    """
    targets = []
    for sample in batch_data_samples:
        pad_shape = tuple(sample.metainfo['batch_input_shape'])
        gt = sample.get('gt_instances', InstanceData())  # semantic datasets may have none
        if 'labels' in gt and len(gt) > 0:
            labels = gt.labels.long().to(device)
            masks = pad_to(gt.masks.to_tensor(torch.bool, device), pad_shape, False)
            boxes = get_box_tensor(gt.bboxes).to(device).float() if 'bboxes' in gt else \
                mask2bbox(masks)
        else:
            labels = torch.zeros(0, dtype=torch.long, device=device)
            masks = torch.zeros((0, *pad_shape), dtype=torch.bool, device=device)
            boxes = torch.zeros((0, 4), device=device)
        stuff_in_instances = bool((labels >= num_things).any())
        if num_classes > num_things and 'gt_sem_seg' in sample and not stuff_in_instances:
            sem_seg = pad_to(sample.gt_sem_seg.sem_seg.to(device), pad_shape, 255)[0]
            stuff_labels, stuff_masks = stuff_targets(sem_seg, num_things, num_classes)
            labels = torch.cat([labels, stuff_labels])
            masks = torch.cat([masks, stuff_masks])
            boxes = torch.cat([boxes, mask2bbox(stuff_masks)])
        targets.append(SegTargets(labels, boxes, masks, pad_shape))
    return targets


def targets_as_samples(targets: List[SegTargets]) -> SampleList:
    """Data samples holding the targets (things and stuff), ``img_shape`` = the padded batch shape
    (the frame of every box here): what a denoising query generator reads."""
    out = []
    for t in targets:
        sample = DetDataSample(metainfo=dict(img_shape=t.pad_shape))
        sample.gt_instances = InstanceData(labels=t.labels, bboxes=t.boxes)
        out.append(sample)
    return out
