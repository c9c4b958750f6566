"""Post-processing of Mask DINO for MMDetection's data samples."""
from typing import Dict, List

import torch.nn.functional as F
from torch import Tensor

from mmdet.models.seg_heads.panoptic_fusion_heads import MaskFormerFusionHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from .instance_postprocess import maskdino_instance_postprocess


@MODELS.register_module()
class MaskDINOFusionHead(MaskFormerFusionHead):
    """MaskFormer's fusion head with Mask DINO's instance inference.

    Differences from :class:`MaskFormerFusionHead`: sigmoid (focal) class scores over queries x
    classes, score = class prob x mean mask prob, and **predicted** boxes (mmdet's head derives boxes
    from masks). ``test_cfg``: ``instance_on`` (default True), ``max_per_image`` (100),
    ``mask_thr`` (0.0 on logits).
    """

    def predict(self, mask_cls_results: Tensor, mask_pred_results: Tensor, box_results: Tensor,
                batch_data_samples: SampleList, rescale: bool = True, **kwargs) -> List[Dict]:
        """Per image results.

        Args:
            mask_cls_results (Tensor): (bs, Q, C) class logits.
            mask_pred_results (Tensor): (bs, Q, H_pad, W_pad) mask logits at the padded size.
            box_results (Tensor): (bs, Q, 4) sigmoided cxcywh w.r.t. the padded batch.
            batch_data_samples (list[DetDataSample]): Their metainfo gives the sizes.
            rescale (bool): Return results at the original image size.

        Returns:
            list[dict]: ``{'ins_results': InstanceData}`` per image.
        """
        test_cfg = self.test_cfg or {}
        results = []
        for cls, masks, boxes, sample in zip(mask_cls_results, mask_pred_results, box_results,
                                             batch_data_samples):
            meta = sample.metainfo
            h, w = meta['img_shape'][:2]
            out_shape = meta['ori_shape'][:2] if rescale else (h, w)
            masks = masks[:, :h, :w]
            if tuple(out_shape) != (h, w):
                masks = F.interpolate(masks[:, None], size=tuple(out_shape), mode='bilinear',
                                      align_corners=False)[:, 0]
            result = {}
            if test_cfg.get('instance_on', True):
                ins = maskdino_instance_postprocess(
                    cls, masks, boxes, tuple(meta['batch_input_shape']), (h, w), tuple(out_shape),
                    max_per_image=test_cfg.get('max_per_image', 100),
                    mask_thr=test_cfg.get('mask_thr', 0.0))
                result['ins_results'] = ins
            results.append(result)
        return results
