"""ONNX export of Mask DINO (backbone + head) and an ONNX Runtime detector with the plugin's own
post-processing.

The exported graph maps a preprocessed (normalised, padded) batch to the last decoder layer's raw
predictions; post-processing (top-k, mask upsampling, panoptic / semantic fusion) stays in
Python, in :class:`MaskDINOFusionHead`, so the ONNX Runtime detector returns the same
``DetDataSample``s as the PyTorch model. The image size is dynamic: level sizes are read off the
feature maps (symbolic in the trace) and deformable attention is exported through mmcv's
``grid_sample`` formulation (ONNX ``GridSample``, opset >= 16; the default) or as a gather in
standard ONNX ops (``deform_attn='gather'``: ``Gather`` + ``MatMul`` per bilinear corner, see
:func:`~mmdet_maskdino.models.layers.msda_gather.multi_scale_deformable_attn_export`), no custom
op. The gather is the plugin's CPU formulation in PyTorch, but ONNX Runtime 1.32 on a 2-core CPU
runs it no faster than ``GridSample`` (as fast at 512, 9-18% slower at 800x1344; README), so it is an
option, not the default.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from torch import Tensor, nn

from mmdet.registry import MODELS
from mmdet.structures import SampleList

#: names of the exported graph's input and outputs
INPUT_NAME = 'inputs'
OUTPUT_NAMES = ('cls_logits', 'boxes', 'mask_logits')
MIN_OPSET = 16
#: how deformable attention can be exported (see :func:`export_onnx`)
DEFORM_ATTN_IMPLS = ('grid_sample', 'gather')


class MaskDINOExportModule(nn.Module):
    """The traced part of a :class:`MaskDINO`: backbone + head, last decoder layer.

    Args:
        detector (nn.Module): A :class:`MaskDINO` in eval mode.

    Forward: ``inputs`` (bs, 3, H, W) preprocessed images (H, W multiples of 32 for the R50
    configs) -> ``cls_logits`` (bs, Q, C), ``boxes`` (bs, Q, 4) sigmoided cxcywh normalised by
    (W, H), ``mask_logits`` (bs, Q, H / 4, W / 4).
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, inputs: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        return self.detector(inputs, mode='tensor')  # (cls_logits, boxes, mask_logits)


def export_onnx(detector: nn.Module, out_file: str, shape: Tuple[int, int] = (512, 512),
                opset: int = 17, dynamic: bool = True, deform_attn: str = 'grid_sample') -> str:
    """Export ``detector`` (backbone + head) to ``out_file``.

    Args:
        detector (nn.Module): A :class:`MaskDINO` (put in eval mode here).
        out_file (str): The ``.onnx`` file written.
        shape (tuple): ``(H, W)`` of the example input used for tracing.
        opset (int): ONNX opset (>= 16, the opsets the export is tested with).
        dynamic (bool): Batch size, height and width as dynamic axes.
        deform_attn (str): ``'grid_sample'`` (mmcv's formulation, ONNX ``GridSample``) or
            ``'gather'`` (``Gather`` + ``MatMul`` per bilinear corner).

    Returns:
        str: ``out_file``.
    """
    if opset < MIN_OPSET:
        raise ValueError(f'opset {opset} < {MIN_OPSET}: deformable attention needs GridSample '
                         f'(the export is tested with opset >= {MIN_OPSET} only)')
    if deform_attn not in DEFORM_ATTN_IMPLS:
        raise ValueError(f'deform_attn={deform_attn!r}: expected one of {DEFORM_ATTN_IMPLS}')
    detector.eval()
    module = MaskDINOExportModule(detector).eval()
    example = torch.randn(1, 3, *shape, device=next(detector.parameters()).device)
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {INPUT_NAME: {0: 'batch', 2: 'height', 3: 'width'},
                        'cls_logits': {0: 'batch'}, 'boxes': {0: 'batch'},
                        'mask_logits': {0: 'batch', 2: 'mask_height', 3: 'mask_width'}}
    from ..models.layers.fp32_deform_attn import Fp32MultiScaleDeformableAttention
    layers = [m for m in detector.modules() if isinstance(m, Fp32MultiScaleDeformableAttention)]
    try:
        for layer in layers:
            layer.export_impl = deform_attn
        with torch.no_grad():
            torch.onnx.export(module, (example, ), out_file, input_names=[INPUT_NAME],
                              output_names=list(OUTPUT_NAMES), dynamic_axes=dynamic_axes,
                              opset_version=opset, dynamo=False, do_constant_folding=True)
    finally:
        for layer in layers:
            del layer.export_impl  # back to the class default
    return out_file


@MODELS.register_module()
class ONNXRuntimeMaskDINO(BaseModel):
    """Mask DINO run by ONNX Runtime, with the config's data preprocessor and fusion head.

    ``predict`` / ``test_step`` follow :class:`MaskDINO`'s contract, so the same data samples
    (``pred_instances`` / ``pred_panoptic_seg`` / ``pred_sem_seg``) come back, and MMEngine's test
    loop, mmdet's metrics and visualisers use it like the PyTorch model (``tools/test.py
    --onnx``). Images must be large enough to give at least ``num_queries`` encoder tokens (the
    top-k of query selection is fixed in the graph; 160x160 for the R50 configs).

    Args:
        model_cfg (dict): The model's config (its ``data_preprocessor``,
            ``panoptic_fusion_head`` and ``test_cfg`` are used).
        onnx_file (str): The exported graph (:func:`export_onnx`).
        providers (list[str], optional): ONNX Runtime execution providers (default: CPU).
        num_threads (int, optional): ONNX Runtime intra-op threads (default: its own choice).
        data_preprocessor (dict, optional): Overrides ``model_cfg``'s (MMEngine's runner passes
            the config's top-level one).
    """

    def __init__(self, model_cfg: dict, onnx_file: str,
                 providers: Optional[Sequence[str]] = None,
                 num_threads: Optional[int] = None,
                 data_preprocessor: Optional[dict] = None) -> None:
        import onnxruntime as ort
        super().__init__(data_preprocessor=data_preprocessor or model_cfg['data_preprocessor'])
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        self.onnx_file = onnx_file
        self.session = ort.InferenceSession(onnx_file, options,
                                            providers=list(providers or
                                                           ['CPUExecutionProvider']))
        fusion_cfg = dict(model_cfg['panoptic_fusion_head'])
        fusion_cfg.update(test_cfg=model_cfg.get('test_cfg'))
        self.panoptic_fusion_head = MODELS.build(fusion_cfg)

    @classmethod
    def from_config(cls, config: Union[str, Config], onnx_file: str,
                    **kwargs) -> 'ONNXRuntimeMaskDINO':
        """Build from a config file (or :class:`Config`) and an exported graph."""
        from mmengine.registry import init_default_scope

        import mmdet_maskdino  # noqa: F401  (registers the fusion head)
        cfg = Config.fromfile(config) if isinstance(config, str) else config
        init_default_scope('mmdet')
        return cls(cfg.model, onnx_file, **kwargs).eval()

    def forward_raw(self, inputs: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The exported graph on a preprocessed batch: ``cls_logits``, ``boxes``,
        ``mask_logits`` (see :class:`MaskDINOExportModule`)."""
        outputs = self.session.run(list(OUTPUT_NAMES),
                                   {INPUT_NAME: inputs.detach().cpu().float().numpy()})
        return tuple(torch.from_numpy(o) for o in outputs)

    def predict(self, inputs: Tensor, data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Data samples with predictions, as ``MaskDINO.predict``."""
        from mmdet_maskdino.models.detectors.maskdino import MaskDINO
        cls_logits, boxes, mask_logits = self.forward_raw(inputs)
        results = self.panoptic_fusion_head.predict(cls_logits, mask_logits, boxes,
                                                    data_samples, rescale=rescale)
        return MaskDINO.add_pred_to_datasample(self, data_samples, results)

    def forward(self, inputs: Tensor, data_samples: SampleList = None,
                mode: str = 'predict'):
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.forward_raw(inputs)
        raise RuntimeError(f'ONNXRuntimeMaskDINO runs inference only, not mode={mode!r}')
