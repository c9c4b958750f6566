"""Instance-level agreement of two prediction runs, against hand-worked numbers."""
import numpy as np
import pytest
import torch

from mmdet_maskdino.deployment.parity import instance_agreement


def _result(img_id, boxes, scores, labels):
    return dict(img_id=img_id, pred_instances=dict(
        bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        scores=torch.tensor(scores), labels=torch.tensor(labels, dtype=torch.long)))


def test_pairs_top_instances_by_label_and_box_iou():
    reference = [
        _result(1, [[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]], [0.9, 0.8, 0.1], [0, 1, 2]),
        _result(2, [[0, 0, 4, 4]], [0.6], [0]),
        _result(3, [[0, 0, 2, 2]], [0.5], [3]),
    ]
    other = [
        _result(3, [[0, 0, 2, 2]], [0.4], [1]),  # same box, another label: unpaired
        _result(2, [], [], []),  # nothing found: unpaired
        _result(1, [[0, 0, 10, 5], [20, 20, 30, 30], [20, 20, 30, 30]], [0.85, 0.8, 0.7],
                [0, 0, 1]),  # IoU 0.5 with the first; the third pairs with the second
    ]
    a = instance_agreement(reference, other, top_k=2)  # the 0.1 instance is not compared
    ious, diffs = [0.5, 1.0, 0.0, 0.0], [0.05, 0.1, 0.6, 0.5]
    assert a['instances'] == 4
    assert a['iou_median'] == pytest.approx(0.25)
    assert (a['iou_ge_0.9'], a['iou_ge_0.5']) == (0.25, 0.5)
    assert a['score_diff_median'] == pytest.approx(0.3)
    assert a['score_diff_p95'] == pytest.approx(0.5 + 0.85 * 0.1)  # linear between 0.5 and 0.6
    assert a['score_diff_max'] == pytest.approx(0.6)
    assert np.median(ious) == a['iou_median'] and max(diffs) == pytest.approx(a['score_diff_max'])


def test_missing_image_and_empty_reference_are_errors():
    ref = [_result(1, [[0, 0, 1, 1]], [0.5], [0])]
    with pytest.raises(KeyError, match='image 1 has no result'):
        instance_agreement(ref, [])
    with pytest.raises(ValueError, match='no instance'):
        instance_agreement([_result(1, [], [], [])], [_result(1, [], [], [])])
