"""Post-processing of Mask DINO for MMDetection's data samples."""
from functools import partial
from typing import Dict, List, Tuple

import torch.nn.functional as F
from torch import Tensor

from mmdet.models.seg_heads.panoptic_fusion_heads import MaskFormerFusionHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from .instance_postprocess import maskdino_instance_postprocess


def resize_mask_logits(masks: Tensor, pad_shape: Tuple[int, int], img_shape: Tuple[int, int],
                       out_shape: Tuple[int, int]) -> Tensor:
    """Mask logits at 1/4 of the padded batch -> the output image (upstream's order).

    Upsample to the padded size (bilinear, align_corners=False), crop the valid image, then resize
    to ``out_shape`` when it differs.

    Args:
        masks (Tensor): (n, h, w) mask logits.
    """
    masks = F.interpolate(masks[:, None], size=pad_shape, mode='bilinear', align_corners=False)
    masks = masks[:, :, :img_shape[0], :img_shape[1]]
    if tuple(out_shape) != tuple(img_shape):
        masks = F.interpolate(masks, size=out_shape, mode='bilinear', align_corners=False)
    return masks[:, 0]


@MODELS.register_module()
class MaskDINOFusionHead(MaskFormerFusionHead):
    """MaskFormer's fusion head with Mask DINO's instance inference.

    Differences from :class:`MaskFormerFusionHead`: sigmoid (focal) class scores over queries x
    classes, score = class prob x mean mask prob, and **predicted** boxes (mmdet's head derives boxes
    from masks); masks arrive at 1/4 resolution and only the selected queries are upsampled.
    ``test_cfg``: ``instance_on`` (default True), ``max_per_image`` (100), ``mask_thr`` (0.0 on
    logits).
    """

    def predict(self, mask_cls_results: Tensor, mask_pred_results: Tensor, box_results: Tensor,
                batch_data_samples: SampleList, rescale: bool = True, **kwargs) -> List[Dict]:
        """Per image results.

        Args:
            mask_cls_results (Tensor): (bs, Q, C) class logits.
            mask_pred_results (Tensor): (bs, Q, H_pad / 4, W_pad / 4) mask logits.
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
            img_shape = tuple(meta['img_shape'][:2])
            pad_shape = tuple(meta['batch_input_shape'])
            out_shape = tuple(meta['ori_shape'][:2]) if rescale else img_shape
            resize = partial(resize_mask_logits, pad_shape=pad_shape, img_shape=img_shape,
                             out_shape=out_shape)
            result = {}
            if test_cfg.get('instance_on', True):
                result['ins_results'] = maskdino_instance_postprocess(
                    cls, masks, boxes, pad_shape, img_shape, out_shape,
                    max_per_image=test_cfg.get('max_per_image', 100),
                    mask_thr=test_cfg.get('mask_thr', 0.0), resize=resize)
            results.append(result)
        return results
