"""The Mask DINO detector."""
from typing import Dict, List, Tuple

from torch import Tensor

from mmdet.models.detectors import MaskFormer
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from ..utils import check_finite_inputs, check_finite_losses


@MODELS.register_module()
class MaskDINO(MaskFormer):
    """Mask DINO (Li et al., CVPR 2023): DINO + a mask branch, one model for boxes and masks.

    Design: MMDetection's :class:`MaskFormer` shell (backbone -> ``panoptic_head`` ->
    ``panoptic_fusion_head``) rather than :class:`DINO`'s ``pre_transformer -> forward_encoder ->
    pre_decoder -> forward_decoder`` hooks, because in Mask DINO the encoder is also the pixel decoder
    whose 1/8 output feeds the mask branch, and query selection needs the mask features (interm masks,
    mask-enhanced boxes): the whole transformer lives in :class:`MaskDINOHead`, as upstream's
    ``sem_seg_head``, which also keeps checkpoint conversion one-to-one. The detector only routes.

    ``mode='loss'`` returns the head's losses, ``mode='predict'`` data samples with, for the tasks
    on in the fusion head's ``test_cfg``, ``pred_instances`` (``bboxes`` xyxy at the original size,
    ``labels``, ``scores``, ``masks``), ``pred_panoptic_seg`` and ``pred_sem_seg``;
    ``mode='tensor'`` the raw ``(pred_logits, pred_boxes, pred_masks)`` of the last layer.

    Non-finite input pixels, predictions or losses raise :class:`NonFiniteError` naming the images
    or terms and the iteration, before the matcher or the optimizer sees them.
    """

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> Dict[str, Tensor]:
        check_finite_inputs(batch_inputs, batch_data_samples, 'training')
        losses = self.panoptic_head.loss(self.extract_feat(batch_inputs), batch_data_samples)
        check_finite_losses(losses)
        return losses

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        check_finite_inputs(batch_inputs, batch_data_samples, 'prediction')
        feats = self.extract_feat(batch_inputs)
        cls, masks, boxes = self.panoptic_head.predict(feats, batch_data_samples)
        results = self.panoptic_fusion_head.predict(cls, masks, boxes, batch_data_samples,
                                                    rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results)

    def add_pred_to_datasample(self, data_samples: SampleList,
                               results_list: List[dict]) -> SampleList:
        """Attach ``ins_results`` / ``pan_results`` / ``sem_results`` to the data samples as
        ``pred_instances`` / ``pred_panoptic_seg`` / ``pred_sem_seg`` (what mmdet's metrics read)."""
        for sample, results in zip(data_samples, results_list):
            if 'ins_results' in results:
                sample.pred_instances = results['ins_results']
            if 'pan_results' in results:
                sample.pred_panoptic_seg = results['pan_results']
            if 'sem_results' in results:
                sample.pred_sem_seg = results['sem_results']
        return data_samples

    def _forward(self, batch_inputs: Tensor,
                 batch_data_samples: SampleList = None) -> Tuple[Tensor, Tensor, Tensor]:
        cls, masks, boxes = self.panoptic_head.predict(self.extract_feat(batch_inputs),
                                                       batch_data_samples)
        return cls, boxes, masks
