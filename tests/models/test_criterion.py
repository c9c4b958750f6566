"""MaskDINOCriterion without a head: the points path (masks from point-sampled pixel embeddings and
matched queries only) against a full-mask reference, and what it keeps for the backward pass."""
from typing import List

import numpy as np
import pytest
import torch
from mmcv.ops import point_sample
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from torch.utils._python_dispatch import TorchDispatchMode

from mmdet.models.utils import get_uncertain_point_coords_with_randomness
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmdet_maskdino.models.layers import MaskDINODnQueryGenerator
from mmdet_maskdino.models.task_modules import DEFAULT_ASSIGNER
from mmdet_maskdino.models.utils import (HeadOutputs, PredictionSets, SegTargets, TargetPoints,
                                         candidate_logits,
                                         point_mask_logits, sample_masks,
                                         shared_uncertain_points, targets_as_samples)
from mmdet_maskdino.testing import build_small_maskdino, make_det_batch

H, W, C, DIMS, NQ = 64, 96, 5, 16, 12
LOSSES = dict(
    loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=4.0),
    loss_bbox=dict(type='L1Loss', loss_weight=5.0),
    loss_iou=dict(type='GIoULoss', loss_weight=2.0),
    loss_mask=dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='mean', loss_weight=5.0),
    loss_dice=dict(type='DiceLoss', use_sigmoid=True, activate=True, reduction='mean',
                   naive_dice=True, eps=1.0, loss_weight=5.0))


def _targets() -> List[SegTargets]:
    rng = np.random.default_rng(0)
    out = []
    for n in (3, 2):
        masks = torch.zeros(n, H, W, dtype=torch.bool)
        boxes = []
        for i in range(n):
            y0, x0 = rng.integers(0, H - 20), rng.integers(0, W - 20)
            y1, x1 = y0 + rng.integers(5, 20), x0 + rng.integers(5, 20)
            masks[i, y0:y1, x0:x1] = True
            boxes.append([x0, y0, x1, y1])
        out.append(SegTargets(torch.as_tensor(rng.integers(0, C, n)),
                              torch.tensor(boxes, dtype=torch.float32), masks, (H, W)))
    return out


def _sets(num_sets: int, nq: int, gen: torch.Generator) -> PredictionSets:
    return PredictionSets(
        (torch.randn(num_sets, 2, nq, C, generator=gen) * 2).requires_grad_(),
        (torch.rand(num_sets, 2, nq, 4, generator=gen) * 0.4 + 0.3).requires_grad_(),
        torch.randn(num_sets, 2, nq, DIMS, generator=gen).requires_grad_())


@pytest.fixture(scope='module')
def criterion():
    """Upstream's draws (fresh points for every set and pair), as the reference below."""
    init_default_scope('mmdet')
    return MODELS.build(dict(type='MaskDINOCriterion', num_things_classes=C, num_points=300,
                             share_points=False, **LOSSES))


def _reference_match(preds, b, masks, target, assigner, num_points):
    """Full-resolution masks sampled at the matcher's points, mmdet's assigner."""
    points = torch.rand((1, num_points, 2))
    n = len(target)
    pred = InstanceData(scores=preds.cls_logits[0, b],
                        bboxes=bbox_cxcywh_to_xyxy(preds.boxes[0, b]) * torch.tensor([W, H, W, H]),
                        masks=point_sample(masks[:, None], points.expand(NQ, -1, -1)).squeeze(1))
    gt = InstanceData(labels=target.labels, bboxes=target.boxes,
                      masks=point_sample(target.masks[:, None].float(),
                                         points.expand(n, -1, -1)).squeeze(1))
    result = assigner.assign(pred, gt, img_meta=dict(img_shape=(H, W)))
    query = torch.nonzero(result.gt_inds > 0).squeeze(1)
    return torch.stack([query, result.gt_inds[query] - 1])


def _reference_set(criterion, preds, features, targets, indices, num_gt):
    """Losses of one set from (bs, nq, h, w) masks, the way Mask2Former / upstream compute them."""
    masks = torch.einsum('bqc,bchw->bqhw', preds.mask_embeds[0], features)
    logits, boxes = preds.cls_logits[0], preds.boxes[0]
    labels = torch.full(logits.shape[:2], C, dtype=torch.long)
    for b, (idx, t) in enumerate(zip(indices, targets)):
        labels[b, idx[0]] = t.labels[idx[1]]
    out = dict(loss_cls=criterion.loss_cls(logits.reshape(-1, C), labels.reshape(-1),
                                           avg_factor=num_gt))
    b_idx = torch.cat([torch.full_like(i[0], b) for b, i in enumerate(indices)])
    q_idx = torch.cat([i[0] for i in indices])
    gt_boxes = torch.cat([t.norm_cxcywh[i[1]] for i, t in zip(indices, targets)])
    src = boxes[b_idx, q_idx]
    out['loss_bbox'] = criterion.loss_bbox(src, gt_boxes, avg_factor=num_gt)
    out['loss_iou'] = criterion.loss_iou(bbox_cxcywh_to_xyxy(src), bbox_cxcywh_to_xyxy(gt_boxes),
                                         avg_factor=num_gt)
    pred_masks = masks[b_idx, q_idx][:, None]
    gt_masks = torch.cat([t.masks[i[1]] for i, t in zip(indices, targets)])[:, None].float()
    with torch.no_grad():
        points = get_uncertain_point_coords_with_randomness(pred_masks, None, 300, 3.0, 0.75)
        gt_points = point_sample(gt_masks, points).squeeze(1)
    pred_points = point_sample(pred_masks, points).squeeze(1)
    out['loss_dice'] = criterion.loss_dice(pred_points, gt_points, avg_factor=num_gt)
    out['loss_mask'] = criterion.loss_mask(pred_points.reshape(-1), gt_points.reshape(-1),
                                           avg_factor=num_gt * 300)
    return out


def _criterion_inputs(seed: int):
    """3 layer sets, an interm set and 3 DN sets (2 groups of 3) over the two images of
    :func:`_targets`, with the pixel embedding and the DN queries."""
    gen = torch.Generator().manual_seed(seed)
    layers, interm, dn_sets = _sets(3, NQ, gen), _sets(1, NQ, gen), _sets(3, 6, gen)
    features = torch.randn(2, DIMS, H // 4, W // 4, generator=gen).requires_grad_()
    targets = _targets()
    dn_gen = MaskDINODnQueryGenerator(num_classes=C, embed_dims=8, num_matching_queries=NQ,
                                      group_cfg=dict(dynamic=True, num_dn_queries=6))
    dn = dn_gen(targets_as_samples(targets))
    return layers, interm, dn_sets, features, targets, dn


def _assert_same_losses_and_gradients(ours, ref, inputs):
    """Same loss keys, losses within rtol 1e-5, gradients of ``inputs`` within 1e-5 x max."""
    assert sorted(ours) == sorted(ref)
    for key in ref:
        torch.testing.assert_close(ours[key], ref[key], rtol=1e-5, atol=1e-7,
                                   msg=lambda m: f'{key}: {m}')
    g_ours = torch.autograd.grad(sum(ours.values()), inputs)
    g_ref = torch.autograd.grad(sum(ref.values()), inputs)
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, atol=1e-5 * b.abs().max().item(), rtol=0)


def test_points_path_equals_full_mask_path(criterion):
    """Matching, every loss term and the gradients of every input, under the same random points
    (same seed, same draws): indices identical, losses rtol 1e-5, gradients atol 1e-5 x max."""
    layers, interm, dn_sets, features, targets, dn = _criterion_inputs(seed=0)
    assert (dn.num_groups, dn.group_size) == (2, 3)
    torch.manual_seed(1)
    ours = criterion(HeadOutputs(features, layers, interm, dn_sets), targets, dn)

    torch.manual_seed(1)
    assigner = TASK_UTILS.build(DEFAULT_ASSIGNER)
    ref = {}
    named = [(f'd{i}.', layers[i]) for i in range(2)] + [('', layers[2]), ('interm.', interm)]
    for prefix, preds in named:
        masks = torch.einsum('bqc,bchw->bqhw', preds.mask_embeds[0], features)
        with torch.no_grad():
            indices = [_reference_match(preds, b, masks[b], t, assigner, 300)
                       for b, t in enumerate(targets)]
        for k, v in _reference_set(criterion, preds, features, targets, indices, 5.0).items():
            ref[prefix + k] = v
    dn_indices = dn.positive_indices([3, 2])
    for prefix, preds in zip(['dn.d0.', 'dn.d1.', 'dn.'], dn_sets):
        for k, v in _reference_set(criterion, preds, features, targets, dn_indices, 10.0).items():
            ref[prefix + k] = v
    _assert_same_losses_and_gradients(ours, ref, [features] + [
        t for s in (layers, interm, dn_sets) for t in (s.cls_logits, s.boxes, s.mask_embeds)])


_TORCH_RAND = torch.rand


def _keyed_rand(*size, device=None, **kwargs):
    """``torch.rand`` whose rows depend on the trailing shape only (as fixture C's shape-keyed
    generator): every draw of a shape gives the same rows, whatever the call order or count."""
    size = tuple(size[0]) if len(size) == 1 and not isinstance(size[0], int) else size
    gen = torch.Generator().manual_seed(hash(size[1:]) % (2**31))
    return _TORCH_RAND(size[1:], generator=gen).expand(size).clone().to(device)


def test_shared_points_equal_upstream_draws_when_the_draws_agree(criterion, monkeypatch):
    """``share_points`` draws once per step; with a generator whose rows depend on the shape only
    (so upstream's per-set draws give the same points) every loss and gradient is the same."""
    layers, interm, dn_sets, features, targets, dn = _criterion_inputs(seed=3)
    shared = MODELS.build(dict(type='MaskDINOCriterion', num_things_classes=C, num_points=300,
                               **LOSSES))
    draws = []

    def counted(*size, **kwargs):
        draws.append(size)
        return _keyed_rand(*size, **kwargs)

    monkeypatch.setattr(torch, 'rand', counted)
    outputs = HeadOutputs(features, layers, interm, dn_sets)
    ours = shared(outputs, targets, dn)
    shared_draws, draws[:] = len(draws), []
    ref = criterion(outputs, targets, dn)
    monkeypatch.setattr(torch, 'rand', _TORCH_RAND)
    # 2 images x (matcher points, loss candidates, loss random points) against, per set, one
    # matcher draw per image (4 matching sets) and 2 loss draws (4 + 3 DN sets)
    assert (shared_draws, len(draws)) == (6, 4 * 2 + 7 * 2)
    _assert_same_losses_and_gradients(ours, ref, [features] + [
        t for s in (layers, interm, dn_sets) for t in (s.cls_logits, s.boxes, s.mask_embeds)])


def test_shared_points_keep_each_sets_own_uncertain_candidates():
    """Pairs of one target share its candidates but each keeps its own most uncertain ones; the
    GT values are those at the returned points."""
    gen = torch.Generator().manual_seed(5)
    masks = torch.rand(2, 40, 56, generator=gen) > 0.5
    shared = TargetPoints.draw(masks, 50, 3.0, 0.75)
    assert shared.candidates.shape == (2, 150, 2) and shared.extra.shape == (2, 13, 2)
    logits = torch.randn(3, 10, 14, generator=gen)
    gt_index = [torch.tensor([1, 0, 1])]
    points, gt = shared_uncertain_points(logits, [shared], gt_index)
    assert points.shape == (3, 50, 2) and gt.shape == (3, 50)
    torch.testing.assert_close(gt, sample_masks(masks, gt_index[0], points), atol=1e-5, rtol=0)
    for m, j in enumerate(gt_index[0].tolist()):
        cand = point_sample(logits[m][None, None], shared.candidates[j][None]).reshape(-1)
        expected = cand.abs().topk(37, largest=False).values.sort().values
        got = point_sample(logits[m][None, None], points[m, :37][None]).reshape(-1)
        torch.testing.assert_close(got.abs().sort().values, expected)
        torch.testing.assert_close(points[m, 37:], shared.extra[j])
    assert not torch.equal(points[0, :37], points[2, :37])  # same target, own choice


@pytest.mark.parametrize('index', [[1, 0, 2, 0, 2, 1], [2, 0, 1], [1, 0, 1]])
def test_candidate_logits_equal_per_pair_point_sample(index):
    """Grouped (every target has the same number of pairs: their maps as channels) and per-pair
    (other cases) sampling give each pair's map at its target's candidates."""
    gen = torch.Generator().manual_seed(6)
    logits = torch.randn(len(index), 12, 17, generator=gen)
    candidates = torch.rand(3, 40, 2, generator=gen)
    index = torch.tensor(index)
    expected = point_sample(logits[:, None], candidates[index]).squeeze(1)
    torch.testing.assert_close(candidate_logits(logits, candidates, index), expected)


def test_sample_masks_equals_point_sample_of_gathered_masks():
    gen = torch.Generator().manual_seed(4)
    masks = torch.rand(4, 33, 47, generator=gen) > 0.6
    index = torch.tensor([2, 0, 2, 3, 1])
    points = torch.rand(5, 200, 2, generator=gen) * 1.2 - 0.1  # some outside: zero padding
    expected = point_sample(masks[index][:, None].float(), points).squeeze(1)
    torch.testing.assert_close(sample_masks(masks, index, points), expected, atol=1e-5, rtol=0)


def test_point_mask_logits_equal_sampled_full_masks():
    gen = torch.Generator().manual_seed(2)
    embeds, features = torch.randn(7, 8, generator=gen), torch.randn(8, 9, 13, generator=gen)
    points = torch.rand(50, 2, generator=gen) * 1.2 - 0.1  # some outside the map: zero padding
    full = torch.einsum('qc,chw->qhw', embeds, features)
    expected = point_sample(full[:, None], points[None].expand(7, -1, -1)).squeeze(1)
    ours = point_mask_logits(embeds, features.permute(1, 2, 0), points)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


class _MatrixProducts(TorchDispatchMode):
    """Records the output shape of every matrix product (mm / bmm) an aten op makes."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in (torch.ops.aten.mm.default, torch.ops.aten.bmm.default):
            self.shapes.append(tuple(out.shape))
        return out


def test_training_makes_no_full_resolution_masks_of_all_queries():
    """Every matrix product of a training step (head + criterion, forward and backward) that
    makes H/4 x W/4 maps: mask maps for the matched queries only, plus the interm queries' maps
    once (no gradient) for mask-enhanced anchors; never one per query of every set."""
    torch.manual_seed(0)
    model = build_small_maskdino(num_queries=20, decoder_layers=2).train()
    masks = [np.zeros((64, 64), bool) for _ in range(3)]
    for i, m in enumerate(masks):
        m[5 + 15 * i:18 + 15 * i, 4:40] = True
    batch = make_det_batch(model, [masks, masks[:1]], [[0, 1, 2], [3]])
    pixels = batch['inputs'].shape[-2] * batch['inputs'].shape[-1] // 16
    head = model.panoptic_head
    with _MatrixProducts() as record:
        losses = model(**batch, mode='loss')
        sum(losses.values()).backward()
    rows = [int(np.prod(s[:-1])) for s in record.shapes if s[-1] == pixels]
    assert head.mask_embed.layers[-1].out_features == 64
    # 64-row maps: the pixel embedding's gradient (64 channels per image)
    queries = [k for k in rows if k != 64]
    assert queries.count(2 * 20) == 1  # the interm maps (2 images x 20 queries) for mask2box
    queries.remove(2 * 20)
    # the rest: matched queries of one image: <= 3 GT per set, 6 DN groups x 3 GT per DN set
    assert queries and max(queries) <= 18 and 18 in queries
