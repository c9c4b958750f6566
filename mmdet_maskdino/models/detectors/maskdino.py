"""The Mask DINO detector."""
from typing import Dict, List, Tuple

import torch
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

    Args:
        channels_last (bool): Keep the conv weights of the backbone and the pixel decoder, and
            the input image, in channels-last memory format (default). oneDNN's convolutions then
            skip their layout reorders: the R50 backbone runs about 25% faster on the CPU, with
            the same numbers up to float rounding. Parameter values and checkpoints are unchanged
            (only strides differ).
        *args, **kwargs: :class:`MaskFormer` arguments.
    """

    def __init__(self, *args, channels_last: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.channels_last = channels_last
        self._set_conv_memory_format()

    def _set_conv_memory_format(self, contiguous: bool = False) -> None:
        fmt = torch.contiguous_format if contiguous or not self.channels_last else \
            torch.channels_last
        self.backbone.to(memory_format=fmt)
        self.panoptic_head.pixel_decoder.to(memory_format=fmt)

    def init_weights(self) -> None:
        """Initialise as :class:`MaskFormer` does, in the default layout: random initialisers
        fill memory in storage order, so the same seed gives the same weights whatever
        ``channels_last`` is."""
        self._set_conv_memory_format(contiguous=True)
        super().init_weights()
        self._set_conv_memory_format()

    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor, ...]:
        """Backbone features C2..C5 (in channels-last layout when ``channels_last``)."""
        if self.channels_last:
            batch_inputs = batch_inputs.contiguous(memory_format=torch.channels_last)
        return super().extract_feat(batch_inputs)

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
