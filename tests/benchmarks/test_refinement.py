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


def test_refinement_table_on_a_training_batch():
    """End to end on a small model: one row per set (input anchors + each layer), IoU in [0, 1];
    the matching rows are those of the last layer's Hungarian matching (channels-last features)."""
    import numpy as np

    from mmdet_maskdino.benchmarks.refinement import refinement_table
    from mmdet_maskdino.testing import build_small_maskdino, make_det_batch
    torch.manual_seed(0)
    model = build_small_maskdino(decoder_layers=2)
    square = np.zeros((64, 64), bool)
    square[8:30, 10:40] = True
    table = refinement_table(model, make_det_batch(model, [[square], [square]], [[1], [2]]))
    for key in ('dn', 'matching'):
        assert len(table[key]) == 3  # input anchors, layer 1, layer 2
        assert all(0.0 <= row['iou'] <= 1.0 and row['l1'] >= 0.0 for row in table[key])
