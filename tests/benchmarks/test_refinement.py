"""Per-layer box errors of the refinement diagnostic, against hand-computed values."""
import math

import torch

from mmdet_maskdino.benchmarks.refinement import pair_box_errors
from mmdet_maskdino.models.utils import PredictionSets, SegTargets


def test_pair_box_errors_hand_computed():
    # one image 100 x 200 (h x w), GT box xyxy (50, 25, 150, 75) -> cxcywh (0.5, 0.5, 0.5, 0.5)
    target = SegTargets(torch.tensor([1]), torch.tensor([[50., 25., 150., 75.]]),
                        torch.zeros(1, 100, 200, dtype=torch.bool), (100, 200))
    boxes = torch.zeros(2, 1, 3, 4)
    boxes[0, 0, 2] = torch.tensor([0.5, 0.5, 0.25, 0.5])  # half as wide: IoU 0.5, L1 0.25
    boxes[1, 0, 2] = torch.tensor([0.5, 0.5, 0.5, 0.5])   # exact
    sets = PredictionSets(torch.zeros(2, 1, 3, 2), boxes, torch.zeros(2, 1, 3, 4))
    rows = pair_box_errors(sets, [target], [torch.tensor([[2], [0]])])
    assert rows[0]['l1'] == 0.25 and math.isclose(rows[0]['iou'], 0.5, rel_tol=1e-6)
    assert rows[1]['l1'] == 0.0 and math.isclose(rows[1]['iou'], 1.0, rel_tol=1e-6)
    empty = pair_box_errors(sets, [target], [torch.zeros(2, 0, dtype=torch.long)])
    assert all(math.isnan(r['l1']) and math.isnan(r['iou']) for r in empty)
