"""Post-processing of Mask DINO for MMDetection's data samples."""
from functools import partial
from typing import Dict, List, Tuple

import torch.nn.functional as F
from mmengine.structures import PixelData
from torch import Tensor

from mmdet.models.seg_heads.panoptic_fusion_heads import MaskFormerFusionHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import OptConfigType
from ...utils.cfg_keys import check_cfg_keys
from .instance_postprocess import maskdino_instance_postprocess
from .segment_postprocess import (class_probabilities, maskdino_panoptic_postprocess,
                                  maskdino_semantic_postprocess, panoptic_keep_scores)


def resize_mask_logits(masks: Tensor, pad_shape: Tuple[int, int], img_shape: Tuple[int, int],
                       out_shape: Tuple[int, int]) -> Tensor:
    """Mask logits at 1/4 of the padded batch -> the output image (upstream's order).

    Upsample to the padded size (bilinear, align_corners=False), crop the valid image, then resize
    to ``out_shape`` when it differs.

    Args:
        masks (Tensor): (n, h, w) mask logits.

    Returns:
        Tensor: (n, *out_shape).
    """
    if masks.size(0) == 0:
        return masks.new_zeros((0, *out_shape))
    masks = F.interpolate(masks[:, None], size=pad_shape, mode='bilinear', align_corners=False)
    masks = masks[:, :, :img_shape[0], :img_shape[1]]
    if tuple(out_shape) != tuple(img_shape):
        masks = F.interpolate(masks, size=out_shape, mode='bilinear', align_corners=False)
    return masks[:, 0]


@MODELS.register_module()
class MaskDINOFusionHead(MaskFormerFusionHead):
    """MaskFormer's fusion head with Mask DINO's inference: instance, panoptic and semantic.

    Differences from :class:`MaskFormerFusionHead`: class scores are sigmoid (focal) over queries x
    classes, or softmax without the no-object column for a CE-trained head (told apart by the number
    of logits); instance boxes are the **predicted** boxes (mmdet's head derives them from masks);
    panoptic and semantic inference re-score with ``softmax(sigmoid(logits) / T)``; masks arrive at
    1/4 of the padded batch and only the queries each task keeps are upsampled.

    ``test_cfg`` (any combination of the three tasks):

    * ``instance_on`` (True), ``max_per_image`` (100), ``mask_thr`` (0.0, on logits). With stuff
      classes only thing labels are reported.
    * ``panoptic_on`` (False), ``object_mask_thr`` (0.25), ``iou_thr`` (0.8), ``mask_prob_thr``
      (0.5): ``pred_panoptic_seg`` for ``CocoPanopticMetric``. As upstream, a sigmoid model keeps a
      query when ``sigmoid(logits).max() > object_mask_thr``; the re-scored probabilities give only
      its segment score and label.
    * ``semantic_on`` (False): ``pred_sem_seg`` (label map) for ``SemSegMetric``.
    * ``temperature`` (0.06): the re-scoring temperature of panoptic/semantic inference.

    Other ``test_cfg`` keys are rejected (a typo would otherwise fall back to the default).
    """

    TEST_CFG_KEYS = ('instance_on', 'max_per_image', 'mask_thr', 'panoptic_on', 'object_mask_thr',
                     'iou_thr', 'mask_prob_thr', 'semantic_on', 'temperature')

    def __init__(self, *args, test_cfg: OptConfigType = None, **kwargs) -> None:
        check_cfg_keys(test_cfg, self.TEST_CFG_KEYS, 'model.test_cfg')
        super().__init__(*args, test_cfg=test_cfg, **kwargs)

    def predict(self, mask_cls_results: Tensor, mask_pred_results: Tensor, box_results: Tensor,
                batch_data_samples: SampleList, rescale: bool = True, **kwargs) -> List[Dict]:
        """Per image results.

        Args:
            mask_cls_results (Tensor): (bs, Q, C) or (bs, Q, C + 1) class logits.
            mask_pred_results (Tensor): (bs, Q, H_pad / 4, W_pad / 4) mask logits.
            box_results (Tensor): (bs, Q, 4) sigmoided cxcywh w.r.t. the padded batch.
            batch_data_samples (list[DetDataSample]): Their metainfo gives the sizes.
            rescale (bool): Return results at the original image size.

        Returns:
            list[dict]: per image, ``ins_results`` (InstanceData), ``pan_results`` and
            ``sem_results`` (PixelData with ``sem_seg`` (1, H, W)) for the tasks switched on.
        """
        cfg = self.test_cfg or {}
        temperature = cfg.get('temperature', 0.06)
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
            if cfg.get('instance_on', True):
                probs = class_probabilities(cls, self.num_classes, temperature=None)
                result['ins_results'] = maskdino_instance_postprocess(
                    probs, masks, boxes, pad_shape, img_shape, out_shape,
                    max_per_image=cfg.get('max_per_image', 100),
                    mask_thr=cfg.get('mask_thr', 0.0), resize=resize,
                    num_things=self.num_things_classes if self.num_stuff_classes > 0 else None)
            if cfg.get('panoptic_on', False) or cfg.get('semantic_on', False):
                probs = class_probabilities(cls, self.num_classes, temperature)
            if cfg.get('panoptic_on', False):
                pan_probs = probs
                if cls.size(-1) == self.num_classes + 1:  # CE head: drop no-object queries
                    pan_probs = probs * (cls.argmax(-1) != self.num_classes)[:, None]
                panoptic = maskdino_panoptic_postprocess(
                    pan_probs, masks, self.num_things_classes, out_shape, resize,
                    object_mask_thr=cfg.get('object_mask_thr', 0.25),
                    iou_thr=cfg.get('iou_thr', 0.8), mask_prob_thr=cfg.get('mask_prob_thr', 0.5),
                    keep_scores=panoptic_keep_scores(cls, self.num_classes))
                result['pan_results'] = PixelData(sem_seg=panoptic[None])
            if cfg.get('semantic_on', False):
                scores = maskdino_semantic_postprocess(probs, masks, resize)
                result['sem_results'] = PixelData(sem_seg=scores.argmax(0, keepdim=True))
            results.append(result)
        return results
