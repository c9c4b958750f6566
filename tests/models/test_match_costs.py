"""ThingBoxCost: stuff targets do not steer the box terms of the matching (hand-worked)."""
import torch
from mmengine.structures import InstanceData

from mmdet_maskdino.models.task_modules import ThingBoxCost

META = dict(img_shape=(10, 10))


def _instances(is_thing=None):
    pred = InstanceData(bboxes=torch.tensor([[0., 0., 2., 2.], [4., 4., 8., 8.]]))
    gt = InstanceData(bboxes=torch.tensor([[0., 0., 2., 2.], [4., 4., 6., 6.], [0., 0., 10., 10.]]),
                      labels=torch.tensor([0, 1, 5]))
    if is_thing is not None:
        gt.is_thing = torch.tensor(is_thing)
    return pred, gt


def test_stuff_columns_get_the_mean_thing_cost():
    cost = ThingBoxCost(dict(type='BBoxL1Cost', weight=2.0, box_format='xyxy'))
    pred, gt = _instances([True, True, False])
    got = cost(pred, gt, META)
    # weight 2 x L1 of xyxy normalised by the image (/10): pred0-gt1 = 2 x (.4+.4+.4+.4), ...
    full = torch.tensor([[0.0, 3.2, 3.2], [4.0, 0.8, 2.4]])
    thing_mean = full[:, :2].mean()
    expected = torch.cat([full[:, :2], thing_mean.expand(2, 1)], 1)
    torch.testing.assert_close(got, expected)


def test_without_things_or_flags():
    cost = ThingBoxCost(dict(type='BBoxL1Cost', weight=2.0, box_format='xyxy'))
    pred, gt = _instances([False, False, False])
    assert torch.equal(cost(pred, gt, META), torch.zeros(2, 3))
    pred, gt = _instances()  # no is_thing field: the wrapped cost unchanged
    inner = cost.cost(pred, gt, META)
    assert torch.equal(cost(pred, gt, META), inner)


def test_point_mask_bce_cost_equals_mmdet_cross_entropy_cost():
    from mmdet.models.task_modules.assigners.match_cost import CrossEntropyLossCost

    from mmdet_maskdino.models.task_modules import PointMaskBCECost
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 500, generator=gen) * 8  # saturated logits too
    logits[0] = 60.0
    logits[1] = -60.0
    targets = (torch.rand(3, 500, generator=gen) > 0.5).float()
    targets[0] = 0.3  # fractional point values (bilinear GT at mask edges)
    pred, gt = InstanceData(masks=logits), InstanceData(masks=targets)
    ours = PointMaskBCECost(weight=5.0)(pred, gt)
    expected = CrossEntropyLossCost(use_sigmoid=True, weight=5.0)(pred, gt)
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-6)
