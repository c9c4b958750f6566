"""int8 export (issue 22): ONNX Runtime's dynamic quantisation of the weight products only; the
products of two activations (deformable attention's gather, self-attention, mask logits) stay
fp32; the int8 graph runs and stays close to the fp32 one."""
import pytest
import torch

pytest.importorskip('onnxruntime', reason='the deploy extra (pip install .[deploy])')
onnx = pytest.importorskip('onnx', reason='the deploy extra (pip install .[deploy])')

from mmdet_maskdino.deployment import (ONNXRuntimeMaskDINO, export_onnx,  # noqa: E402
                                       quantize_int8, weight_products)
from mmdet_maskdino.testing import get_repo_config  # noqa: E402


def _demo(seed=0):
    from mmengine.registry import init_default_scope

    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    cfg = get_repo_config('demo/maskdino_r18_shapes.py')
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return cfg, model.eval()


@pytest.mark.parametrize('deform_attn', ['grid_sample', 'gather'])
def test_int8_quantises_the_weight_products_and_keeps_activation_products(tmp_path, deform_attn):
    cfg, model = _demo()
    fp32_file = export_onnx(model, str(tmp_path / 'demo.onnx'), shape=(128, 128),
                            deform_attn=deform_attn)
    report = quantize_int8(fp32_file, str(tmp_path / 'demo_int8.onnx'))
    fp32_graph = onnx.load(fp32_file).graph
    assert (report.quantised, report.kept_fp32) == weight_products(fp32_graph)
    assert report.kept_fp32  # the mask logits (query x pixel embedding), at least
    layer0 = 'pixel_decoder/encoder/layers.0/'
    for part in ('self_attn/value_proj/', 'self_attn/output_proj/', 'self_attn/sampling_offsets/',
                 'self_attn/attention_weights/', 'ffn/'):  # every Linear of an encoder layer
        assert any(layer0 + part in name for name in report.quantised), part
    # the gather formulation's own products (value rows x weights) stay fp32
    gathers = sum(layer0 + 'self_attn/MatMul' in name for name in report.kept_fp32)
    assert gathers == (4 if deform_attn == 'gather' else 0)
    int8_graph = onnx.load(str(tmp_path / 'demo_int8.onnx')).graph
    names = {n.name: n.op_type for n in int8_graph.node}
    assert all(names.get(n) == 'MatMul' for n in report.kept_fp32)  # untouched
    assert not any(n in names for n in report.quantised)  # replaced by integer products
    assert any(op in ('MatMulInteger', 'DynamicQuantizeMatMul') for op in names.values())

    x = torch.randn(1, 3, 160, 160, generator=torch.Generator().manual_seed(1))
    ref = ONNXRuntimeMaskDINO.from_config(cfg, fp32_file).forward_raw(x)
    ours = ONNXRuntimeMaskDINO.from_config(cfg, str(tmp_path / 'demo_int8.onnx')).forward_raw(x)
    for a, b in zip(ours, ref):
        assert a.shape == b.shape and torch.isfinite(a).all()
    assert not torch.equal(ours[1], ref[1])  # really another computation
