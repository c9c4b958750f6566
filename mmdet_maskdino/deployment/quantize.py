"""int8 weights for an exported Mask DINO graph, with ONNX Runtime's own quantisation tools.

Dynamic quantisation (``onnxruntime.quantization.quantize_dynamic``) of the products with a
constant weight matrix: every ``nn.Linear`` of the graph (exported as ``MatMul`` / ``Gemm`` whose
second input is an initializer: projections, FFNs, prediction heads). Their weights are stored in
int8 (per output channel) and their activations quantised per tensor at run time.

What stays fp32, and why:

* products of two activations (``MatMul`` without a constant input): the deformable attention's
  gather of sampled values (a weighted sum that bilinear interpolation needs precise), the decoder's
  self-attention, and the mask logits (query embedding x pixel embedding: their sign is the mask);
* convolutions (backbone, pixel decoder): static quantisation would need a calibration set and
  ONNX Runtime's QDQ convolutions; this option does not do it (see the README for what was measured);
* everything else (normalisation, softmax, top-k, sigmoid, box arithmetic).
"""
from dataclasses import dataclass
from typing import List, Sequence

__all__ = ['Int8Report', 'quantize_int8', 'weight_products']

QUANTISED_OPS = ('MatMul', 'Gemm')


@dataclass
class Int8Report:
    """What :func:`quantize_int8` quantised.

    Attributes:
        quantised (list[str]): Node names whose weights are int8.
        kept_fp32 (list[str]): ``MatMul`` / ``Gemm`` nodes left in fp32 (two activations).
    """
    quantised: List[str]
    kept_fp32: List[str]


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


def quantize_int8(onnx_file: str, out_file: str) -> Int8Report:
    """Write ``out_file``: ``onnx_file`` with int8 weights in its weight products (see the module
    docstring).

    Args:
        onnx_file (str): An fp32 graph from :func:`~mmdet_maskdino.deployment.export_onnx`.
        out_file (str): The int8 graph written.

    Returns:
        Int8Report: The quantised nodes and the products kept in fp32.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    graph = onnx.load(onnx_file).graph
    with_weights, others = weight_products(graph)
    if not with_weights:
        raise ValueError(f'{onnx_file}: no MatMul / Gemm with a constant weight to quantise')
    quantize_dynamic(onnx_file, out_file, op_types_to_quantize=list(QUANTISED_OPS),
                     nodes_to_exclude=others, per_channel=True, weight_type=QuantType.QInt8)
    return Int8Report(quantised=with_weights, kept_fp32=others)
