"""The pretext detector: Mask DINO with a frozen backbone that also encodes the query patches."""
from typing import Dict, List

import torch
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmdet_maskdino.models import MaskDINO


@MODELS.register_module()
class UPDETR(MaskDINO):
    """UP-DETR pretraining of Mask DINO's transformer (random query patch detection).

    The backbone is frozen (UP-DETR: the CNN is a pretrained, fixed feature extractor; the
    transformer learns to localise). Each image's ``query_patches`` (packed by
    :class:`PackPatchInputs`) are normalised like the image, encoded by the same frozen backbone
    and globally average-pooled into ``patch_feats`` (bs, num_patches, C5 channels), which the
    :class:`UPDETRHead` adds to its query groups and :class:`UPDETRCriterion` reconstructs.

    ``predict`` returns, per image, ``pred_instances`` with every query's patch box (xyxy at the
    original size), score (sigmoid of the patch logit) and ``patch_index`` (the group of the
    query); :class:`PatchLocalisationMetric` turns them into patch localisation AP.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for p in self.backbone.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> 'UPDETR':
        super().train(mode)
        self.backbone.eval()  # frozen: batch-norm statistics too
        return self

    def patch_features(self, samples: SampleList) -> Tensor:
        """(bs, num_patches, C) pooled frozen-backbone features of every image's patches."""
        patches = torch.stack([s.query_patches for s in samples]).to(self.data_preprocessor.device)
        bs, n = patches.shape[:2]
        patches = patches.flatten(0, 1)
        pre = self.data_preprocessor
        if getattr(pre, '_channel_conversion', False):
            patches = patches[:, [2, 1, 0]]
        if getattr(pre, '_enable_normalize', False):
            patches = (patches - pre.mean) / pre.std
        with torch.no_grad():
            feats = self.extract_feat(patches)[-1].mean((2, 3))
        return feats.view(bs, n, -1)

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> Dict[str, Tensor]:
        with torch.no_grad():
            feats = self.extract_feat(batch_inputs)
        return self.panoptic_head.loss(feats, batch_data_samples,
                                       patch_feats=self.patch_features(batch_data_samples))

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        feats = self.extract_feat(batch_inputs)
        logits, _, boxes = self.panoptic_head.predict(
            feats, batch_data_samples, patch_feats=self.patch_features(batch_data_samples))
        group_size = self.panoptic_head.group_size
        for sample, cls, box in zip(batch_data_samples, logits, boxes):
            pad_h, pad_w = sample.metainfo['batch_input_shape']
            xyxy = bbox_cxcywh_to_xyxy(box) * box.new_tensor([pad_w, pad_h, pad_w, pad_h])
            if rescale:
                scale_w, scale_h = sample.metainfo['scale_factor']
                xyxy = xyxy / xyxy.new_tensor([scale_w, scale_h, scale_w, scale_h])
            results = InstanceData()
            results.bboxes = xyxy
            results.scores = cls[:, 0].sigmoid()
            results.labels = torch.zeros_like(results.scores, dtype=torch.long)
            results.patch_index = torch.arange(len(xyxy), device=xyxy.device) // group_size
            sample.pred_instances = results
        return batch_data_samples

    def _forward(self, batch_inputs: Tensor, batch_data_samples: SampleList = None) -> List:
        raise NotImplementedError('UPDETR has no tensor mode; use loss or predict')
