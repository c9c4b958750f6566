"""Upstream's GIoU (``inter / (union + eps) - (enclosing - union) / (enclosing + eps)``) in the
loss and the matching cost, on hand-computed tiny and degenerate boxes (normalised xyxy)."""
import pytest
import torch
from mmengine.structures import InstanceData

from mmdet.models.losses import GIoULoss
from mmdet.registry import MODELS, TASK_UTILS
import mmdet_maskdino  # noqa: F401  (registers the loss and the cost)
from mmdet_maskdino.models.losses import generalized_box_iou

# (pred, target, upstream's GIoU worked by hand with eps = 1e-6)
CASES = [
    # tiny overlapping boxes: areas 1e-4, inter 5e-5, union 1.5e-4, enclosing 1.5e-4
    ([0.0, 0.0, 0.01, 0.01], [0.005, 0.0, 0.015, 0.01], 5e-5 / (1.5e-4 + 1e-6) - 0.0),
    # tiny disjoint boxes: areas 1e-6, inter 0, union 2e-6, enclosing 3e-6
    ([0.0, 0.0, 0.001, 0.001], [0.002, 0.0, 0.003, 0.001], -(1e-6) / (3e-6 + 1e-6)),
    # a zero-area point on itself: every term 0 / eps
    ([0.2, 0.2, 0.2, 0.2], [0.2, 0.2, 0.2, 0.2], 0.0),
    # a zero-width line inside a box: inter 0, union = enclosing = 0.08
    ([0.1, 0.1, 0.1, 0.3], [0.0, 0.0, 0.2, 0.4], 0.0 - 0.0 / (0.08 + 1e-6)),
    # ordinary boxes: areas 0.04 and 0.06, inter 0.01, union 0.09, enclosing 0.3 x 0.4 = 0.12
    ([0.1, 0.1, 0.3, 0.3], [0.2, 0.2, 0.4, 0.5], 0.01 / (0.09 + 1e-6) - 0.03 / (0.12 + 1e-6)),
]
PRED = torch.tensor([c[0] for c in CASES], dtype=torch.float64)
TARGET = torch.tensor([c[1] for c in CASES], dtype=torch.float64)
EXPECTED = torch.tensor([c[2] for c in CASES], dtype=torch.float64)


def test_formula_on_hand_computed_boxes():
    got = generalized_box_iou(PRED, TARGET, is_aligned=True)
    torch.testing.assert_close(got, EXPECTED, rtol=1e-12, atol=1e-12)
    # the (n, m) form holds the aligned pairs on its diagonal
    torch.testing.assert_close(torch.diagonal(generalized_box_iou(PRED, TARGET)), got)


def test_differs_from_mmdet_clamped_eps_where_it_matters():
    """mmdet's GIoULoss (``max(union, eps)``) gives -1/3 on the tiny disjoint pair; upstream
    -1/4: the plugin's loss is upstream's."""
    mmdet_loss = GIoULoss(reduction='none')(PRED[1:2].float(), TARGET[1:2].float())
    assert mmdet_loss.item() == pytest.approx(1 + 1 / 3, rel=1e-4)
    ours = MODELS.build(dict(type='MaskDINOGIoULoss', reduction='none'))
    assert ours(PRED[1:2].float(), TARGET[1:2].float()).item() == pytest.approx(1.25, rel=1e-5)


def test_loss_weighting_and_finite_gradients_on_degenerate_boxes():
    loss = MODELS.build(dict(type='MaskDINOGIoULoss', loss_weight=2.0))
    pred = PRED.clone().requires_grad_(True)
    value = loss(pred, TARGET, avg_factor=4.0)
    # mmdet's weight_reduce_loss divides by avg_factor + float32's eps (1.2e-7)
    assert value.item() == pytest.approx(2.0 * (1 - EXPECTED).sum().item() / 4.0, rel=1e-6)
    value.backward()
    assert torch.isfinite(pred.grad).all()
    weight = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    weighted = loss(PRED, TARGET, weight=weight, reduction_override='sum')
    assert weighted.item() == pytest.approx(2.0 * (2 - EXPECTED[0] - EXPECTED[4]).item())


def test_match_cost_is_minus_giou_of_boxes_normalised_by_img_shape():
    """The cost takes absolute xyxy (as mmdet's IoUCost) and normalises by ``img_shape`` first,
    so its eps is upstream's (relative to the image)."""
    h, w = 640, 480
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)
    cost = TASK_UTILS.build(dict(type='MaskDINOGIoUCost', weight=2.0))
    pred = InstanceData(bboxes=PRED.float() * scale)
    gt = InstanceData(bboxes=TARGET.float() * scale)
    got = cost(pred, gt, img_meta=dict(img_shape=(h, w)))
    expected = -2.0 * generalized_box_iou(PRED, TARGET)
    assert got.shape == (len(CASES), len(CASES))
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(torch.diagonal(got).double(), -2.0 * EXPECTED, rtol=1e-4,
                               atol=1e-6)
