"""ONNX export: the exported graph gives PyTorch's predictions at sizes other than the traced one,
and the ONNX Runtime detector returns the same instances after post-processing."""
import numpy as np
import pytest
import torch

pytest.importorskip('onnxruntime', reason='the deploy extra (pip install .[deploy])')
pytest.importorskip('onnx', reason='the deploy extra (pip install .[deploy])')

from mmdet_maskdino.deployment import ONNXRuntimeMaskDINO, export_onnx  # noqa: E402
from mmdet_maskdino.models.layers.fp32_deform_attn import Fp32MultiScaleDeformableAttention  # noqa: E402,E501
from mmdet_maskdino.testing import get_repo_config, make_det_batch  # noqa: E402


def _build(config: str, seed: int = 0):
    from mmengine.registry import init_default_scope

    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    cfg = get_repo_config(config)
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return cfg, model.eval()


def _square(size, y0, y1, x0, x1):
    m = np.zeros(size, bool)
    m[y0:y1, x0:x1] = True
    return m


def _compare_raw(model, runner, sizes, atol=1e-4):
    """Raw outputs within ``atol``, up to the order of queries whose selection scores tie.

    Query selection sorts encoder tokens by score; where two scores differ by float rounding,
    the two runtimes may list them in either order, and the decoder (permutation-equivariant)
    carries the swap through. The rows are paired by the Hungarian method (scipy) on the class
    logit distance; only neighbours may swap, and only a few.
    """
    from scipy.optimize import linear_sum_assignment
    for h, w in sizes:  # none of them the traced size
        x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(h * w))
        with torch.no_grad():
            cls, masks, boxes = model.panoptic_head.predict(model.extract_feat(x), None)
        ort_cls, ort_boxes, ort_masks = runner.forward_raw(x)
        assert ort_masks.shape == masks.shape == (1, cls.size(1), h // 4, w // 4)
        cost = torch.cdist(ort_cls[0], cls[0], p=float('inf'))
        rows, order = linear_sum_assignment(cost.numpy())
        order = torch.as_tensor(order)
        moved = order != torch.arange(len(order))
        assert (order - torch.arange(len(order))).abs().max() <= 1, 'non-neighbour swap'
        assert moved.float().mean() <= 0.03, moved.sum()
        for name, ours, ref in (('cls_logits', ort_cls, cls), ('boxes', ort_boxes, boxes),
                                ('mask_logits', ort_masks, masks)):
            torch.testing.assert_close(ours, ref[:, order], atol=atol, rtol=0,
                                       msg=lambda m: f'{name} at {h}x{w}: {m}')


def test_demo_model_export_matches_pytorch_at_other_sizes_and_after_postprocessing(tmp_path):
    cfg, model = _build('demo/maskdino_r18_shapes.py')
    onnx_file = export_onnx(model, str(tmp_path / 'demo.onnx'), shape=(128, 128))
    runner = ONNXRuntimeMaskDINO.from_config(cfg, onnx_file)
    _compare_raw(model, runner, [(96, 160), (192, 128)])
    # the whole predict path: the config's data preprocessor, the plugin's fusion head
    for size in ((96, 160), (160, 96)):
        batch = make_det_batch(model, [[_square(size, 10, 50, 20, 60)]], [[1]],
                               image_size=size, training=False)
        with torch.no_grad():
            ref = model.predict(batch['inputs'], batch['data_samples'])[0].pred_instances
        ours = runner.predict(batch['inputs'], [s.clone() for s in batch['data_samples']])
        ours = ours[0].pred_instances
        assert len(ours) == len(ref) > 0
        assert torch.equal(ours.labels, ref.labels)
        assert torch.equal(ours.query_index, ref.query_index)
        torch.testing.assert_close(ours.scores, ref.scores, atol=1e-4, rtol=0)
        torch.testing.assert_close(ours.bboxes, ref.bboxes, atol=1e-3, rtol=0)
        # masks: logits within 1e-4, so only pixels within 1e-4 of the threshold may flip
        assert (ours.masks != ref.masks).float().mean() < 1e-3


def test_gather_export_uses_standard_ops_and_matches_pytorch(tmp_path):
    """``deform_attn='gather'``: deformable attention as Gather + MatMul (no GridSample, no custom
    domain, a MatMul per bilinear corner of every deformable attention layer), same outputs."""
    import onnx
    cfg, model = _build('demo/maskdino_r18_shapes.py')
    onnx_file = export_onnx(model, str(tmp_path / 'demo.onnx'), shape=(128, 128),
                            deform_attn='gather')
    graph = onnx.load(onnx_file).graph
    ops = [n.op_type for n in graph.node]
    assert 'GridSample' not in ops
    assert {n.domain for n in graph.node} <= {'', 'ai.onnx'}
    msda = sum(isinstance(m, Fp32MultiScaleDeformableAttention) for m in model.modules())
    assert msda > 0 and ops.count('MatMul') >= 4 * msda
    assert all('export_impl' not in vars(m) for m in model.modules())  # restored
    _compare_raw(model, ONNXRuntimeMaskDINO.from_config(cfg, onnx_file), [(96, 160)])
    grid = onnx.load(export_onnx(model, str(tmp_path / 'grid.onnx'), shape=(128, 128))).graph
    assert [n.op_type for n in grid.node].count('GridSample') == 4 * msda  # one per level
    with pytest.raises(ValueError, match='deform_attn'):
        export_onnx(model, str(tmp_path / 'x.onnx'), deform_attn='loop')


def test_export_rejects_an_untested_opset(tmp_path):
    _, model = _build('demo/maskdino_r18_shapes.py')
    with pytest.raises(ValueError, match='GridSample'):
        export_onnx(model, str(tmp_path / 'x.onnx'), opset=15)


def test_r50_default_config_export_matches_pytorch(tmp_path):
    cfg, model = _build('maskdino_r50.py')
    runner = ONNXRuntimeMaskDINO.from_config(
        cfg, export_onnx(model, str(tmp_path / 'r50.onnx'), shape=(320, 320)))
    _compare_raw(model, runner, [(256, 384), (384, 256)])
