"""int8 weights for an exported Mask DINO graph, with ONNX Runtime's own quantisation tools.

Dynamic quantisation (``onnxruntime.quantization.quantize_dynamic``) of the products with a
constant weight matrix: every ``nn.Linear`` of the graph (exported as ``MatMul`` / ``Gemm`` whose
second input is an initializer: projections, FFNs, prediction heads; ONNX Runtime's pre-processing,
run first, folds the ``Identity`` / ``Transpose`` nodes through which shared weights reach their
products). Their weights are stored in int8 (per output channel) and their activations quantised
per tensor at run time.

What stays fp32, and why:

* products of two activations (``MatMul`` without a constant input): the deformable attention's
  gather of sampled values (a weighted sum that bilinear interpolation needs precise), the decoder's
  self-attention, and the mask logits (query embedding x pixel embedding: their sign is the mask);
* convolutions (backbone, pixel decoder), unless a calibration set is given: then they are
  quantised statically (``quantize_static``, QDQ format: weights int8 per output channel,
  activations uint8 per tensor with ranges from the calibration images' min / max), which ONNX
  Runtime fuses into ``QLinearConv``;
* everything else (normalisation, softmax, top-k, sigmoid, box arithmetic).
"""
import itertools
import os.path as osp
import tempfile
from dataclasses import dataclass, field
from typing import Iterable, List, Optional, Sequence

import numpy as np

__all__ = ['Int8Report', 'quantize_int8', 'weight_products', 'calibration_inputs']

QUANTISED_OPS = ('MatMul', 'Gemm')


@dataclass
class Int8Report:
    """What :func:`quantize_int8` quantised.

    Attributes:
        quantised (list[str]): Node names whose weights are int8.
        kept_fp32 (list[str]): ``MatMul`` / ``Gemm`` nodes left in fp32 (two activations).
        convs (list[str]): ``Conv`` nodes quantised statically (empty without calibration).
        calibration_images (int): Images the activation ranges were measured on.
    """
    quantised: List[str]
    kept_fp32: List[str]
    convs: List[str] = field(default_factory=list)
    calibration_images: int = 0


def weight_products(graph, op_types: Sequence[str] = QUANTISED_OPS):
    """Split the graph's ``op_types`` nodes into those with a constant second input (an initializer
    or a ``Constant`` output) and the others.

    Returns:
        tuple: ``(with_weights, activations_only)``, two lists of node names.
    """
    constants = {i.name for i in graph.initializer}
    constants.update(o for n in graph.node if n.op_type == 'Constant' for o in n.output)
    with_weights, others = [], []
    for node in graph.node:
        if node.op_type in op_types:
            weight = len(node.input) > 1 and node.input[1] in constants
            (with_weights if weight else others).append(node.name)
    return with_weights, others


def quantize_int8(onnx_file: str, out_file: str,
                  calibration: Optional[Iterable[np.ndarray]] = None) -> Int8Report:
    """Write ``out_file``: ``onnx_file`` with int8 weights in its weight products and, given a
    calibration set, int8 convolutions (see the module docstring).

    Args:
        onnx_file (str): An fp32 graph from :func:`~mmdet_maskdino.deployment.export_onnx`.
        out_file (str): The int8 graph written.
        calibration (iterable[np.ndarray], optional): Preprocessed images, each ``(1, 3, H, W)``
            float32 as the graph takes them (:func:`calibration_inputs`), for the convolutions'
            activation ranges. Without it the convolutions stay fp32.

    Returns:
        Int8Report: The quantised nodes and the products kept in fp32.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process
    with tempfile.TemporaryDirectory() as tmp:
        # ONNX Runtime's pre-processing (shape inference, constant folding): without it the
        # convolutions' biases are not initializers and the QDQ convolutions are not fused
        source, used = osp.join(tmp, 'pre.onnx'), 0
        quant_pre_process(onnx_file, source, skip_symbolic_shape=True)
        graph = onnx.load(source).graph
        with_weights, others = weight_products(graph)
        if not with_weights:
            raise ValueError(f'{onnx_file}: no MatMul / Gemm with a constant weight to quantise')
        convs = [n.name for n in graph.node if n.op_type == 'Conv']
        input_name = graph.input[0].name
        del graph
        if calibration is not None:
            arrays = iter(calibration)
            first = next(arrays, None)
            if first is None:
                raise ValueError('quantize_int8: the calibration set is empty')
            used = _quantize_convs(source, osp.join(tmp, 'conv_int8.onnx'), input_name,
                                   itertools.chain([first], arrays), convs)
            source = osp.join(tmp, 'conv_int8.onnx')
        quantize_dynamic(source, out_file, op_types_to_quantize=list(QUANTISED_OPS),
                         nodes_to_exclude=others, per_channel=True, weight_type=QuantType.QInt8)
    return Int8Report(quantised=with_weights, kept_fp32=others,
                      convs=convs if calibration is not None else [], calibration_images=used)


def _quantize_convs(onnx_file: str, out_file: str, input_name: str,
                    arrays: Iterable[np.ndarray], convs: Sequence[str]) -> int:
    """Static QDQ quantisation of the ``convs`` nodes (activation ranges: min / max over
    ``arrays``, each a ``(1, 3, H, W)`` graph input). Returns how many arrays were read."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)

    class Reader(CalibrationDataReader):
        count = 0

        def get_next(self) -> Optional[dict]:
            array = next(arrays, None)
            if array is None:
                return None
            array = np.asarray(array, dtype=np.float32)
            if array.ndim != 4 or array.shape[:2] != (1, 3):
                raise ValueError(f'calibration input {self.count}: expected a (1, 3, H, W) '
                                 f'array, got shape {array.shape}')
            self.count += 1
            return {input_name: array}

    arrays = iter(arrays)
    reader = Reader()
    quantize_static(onnx_file, out_file, reader, quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=['Conv'], nodes_to_quantize=list(convs),
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    return reader.count


def calibration_inputs(cfg, num_images: int, seed: int = 0,
                       dataset: Optional[dict] = None) -> Iterable[np.ndarray]:
    """Preprocessed training images for :func:`quantize_int8`'s calibration: ``num_images`` drawn
    at random (``seed``) from the config's training set, loaded with its *test* pipeline (the
    sizes the deployed graph sees) and the model's data preprocessor.

    Args:
        cfg (Config): A Mask DINO config.
        num_images (int): How many training images.
        seed (int): Which ones (a permutation of the training set).
        dataset (dict, optional): Another dataset config to draw from (its pipeline is replaced
            by the test pipeline too).

    Yields:
        np.ndarray: ``(1, 3, H, W)`` float32 inputs of the exported graph.
    """
    import copy

    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope

    from mmdet.registry import DATASETS, MODELS
    init_default_scope('mmdet')
    dataset_cfg = copy.deepcopy(dataset or cfg.train_dataloader.dataset)
    while 'dataset' in dataset_cfg:  # RepeatDataset, ClassBalancedDataset, ...
        dataset_cfg = dataset_cfg['dataset']
    dataset_cfg['pipeline'] = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    dataset = DATASETS.build(dataset_cfg)
    if num_images < 1 or len(dataset) == 0:
        raise ValueError(f'calibration: {num_images} images asked from a training set of '
                         f'{len(dataset)} ({dataset_cfg.get("ann_file")})')
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    order = np.random.default_rng(seed).permutation(len(dataset))[:num_images]
    for index in order:
        with torch.no_grad():
            batch = preprocessor(pseudo_collate([dataset[int(index)]]), False)
        yield batch['inputs'].float().numpy()
