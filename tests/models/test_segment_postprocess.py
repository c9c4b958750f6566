"""Panoptic / semantic inference on hand-built logits and masks (independent expectations)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData

from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.structures import DetDataSample
from mmdet_maskdino.models.seg_heads import (MaskDINOFusionHead, class_probabilities,
                                             maskdino_panoptic_postprocess,
                                             maskdino_semantic_postprocess,
                                             panoptic_keep_scores)

NUM_THINGS, NUM_CLASSES = 2, 4  # things 0, 1; stuff 2, 3
H, W = 8, 10
BIG = 20.0


def _identity(masks):
    return masks


def _query(label, region, num_classes=NUM_CLASSES):
    """One query: a confident class logit and +-BIG mask logits on ``region`` (bool (H, W))."""
    cls = torch.full((num_classes, ), -BIG)
    cls[label] = BIG
    return cls, torch.where(region, BIG, -BIG)


def _stack(queries):
    cls, masks = zip(*queries)
    return torch.stack(cls), torch.stack(masks)


def _region(rows, cols):
    m = torch.zeros(H, W, dtype=torch.bool)
    m[rows, cols] = True
    return m


def _panoptic(cls_logits, masks, **kwargs):
    probs = class_probabilities(cls_logits, NUM_CLASSES)
    return maskdino_panoptic_postprocess(probs, masks, NUM_THINGS, (H, W), _identity, **kwargs)


def test_class_probabilities_against_numpy():
    logits = torch.tensor([[0.3, -1.2, 2.0], [-0.5, 0.1, 0.0]])
    sig = 1 / (1 + np.exp(-logits.numpy().astype(np.float64)))
    e = np.exp(sig / 0.06)
    expected = e / e.sum(1, keepdims=True)
    np.testing.assert_allclose(class_probabilities(logits, 3).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(class_probabilities(logits, 3, None).numpy(), sig, rtol=1e-6)
    # CE head: num_classes + 1 logits, the last is no-object and is dropped after the softmax
    e = np.exp(logits.numpy().astype(np.float64))
    expected = (e / e.sum(1, keepdims=True))[:, :2]
    np.testing.assert_allclose(class_probabilities(logits, 2).numpy(), expected, rtol=1e-5)
    with pytest.raises(ValueError, match='expected 5 or 6 class logits'):
        class_probabilities(logits, 5)


def test_panoptic_things_get_ids_and_stuff_segments_merge():
    thing_a = _region(slice(0, 3), slice(0, 3))
    thing_b = _region(slice(0, 3), slice(5, 8))  # same class as a: a second instance
    stuff_left = _region(slice(4, 8), slice(0, 5))
    stuff_right = _region(slice(4, 8), slice(5, 10))  # same stuff class, another query
    cls, masks = _stack([_query(1, thing_a), _query(1, thing_b), _query(3, stuff_left),
                         _query(3, stuff_right)])
    pan = _panoptic(cls, masks)
    expected = torch.full((H, W), NUM_CLASSES, dtype=torch.int32)  # VOID elsewhere
    expected[thing_a] = 1 + 1 * INSTANCE_OFFSET
    expected[thing_b] = 1 + 2 * INSTANCE_OFFSET
    expected[stuff_left | stuff_right] = 3  # one segment for the class (instance id 0)
    assert torch.equal(pan, expected)


def test_panoptic_overlap_filter_drops_mostly_covered_queries():
    big = _region(slice(0, 6), slice(0, 6))      # 36 px
    inside = _region(slice(1, 4), slice(1, 4))   # 9 px, all inside ``big``
    cls_big, mask_big = _query(0, big)
    cls_in, mask_in = _query(1, inside)
    cls_in[1] = 1.0  # lower score: it loses every pixel of ``inside`` to ``big``
    pan = _panoptic(torch.stack([cls_big, cls_in]), torch.stack([mask_big, mask_in]))
    assert set(pan.unique().tolist()) == {0 + INSTANCE_OFFSET, NUM_CLASSES}
    assert torch.equal(pan == INSTANCE_OFFSET, big)
    # the same two queries with a partial overlap: the small one keeps 2/3 of its mask (< 0.8)
    # and is dropped; with iou_thr 0.5 it stays with the pixels it won
    side = _region(slice(0, 3), slice(4, 10))    # 18 px, 6 of them inside ``big``
    cls_side, mask_side = _query(1, side)
    cls_side[1] = 1.0
    pan = _panoptic(torch.stack([cls_big, cls_side]), torch.stack([mask_big, mask_side]))
    assert not (pan == 1 + 2 * INSTANCE_OFFSET).any()
    pan = _panoptic(torch.stack([cls_big, cls_side]), torch.stack([mask_big, mask_side]),
                    iou_thr=0.5)
    assert torch.equal(pan == 1 + 2 * INSTANCE_OFFSET, side & ~big)


def test_panoptic_empty_and_all_below_threshold():
    empty = _panoptic(torch.zeros(0, NUM_CLASSES), torch.zeros(0, H, W))
    assert empty.shape == (H, W) and (empty == NUM_CLASSES).all()
    # uniform class logits: every re-scored probability is 1 / C = 0.25, not > 0.25
    cls = torch.zeros(3, NUM_CLASSES)
    masks = torch.full((3, H, W), BIG)
    assert (_panoptic(cls, masks) == NUM_CLASSES).all()
    # masks that never reach 0.5 give empty segments: nothing is assigned either
    cls, _ = _stack([_query(0, _region(0, 0))])
    assert (_panoptic(cls, torch.full((1, H, W), -1.0)) == NUM_CLASSES).all()


def test_semantic_scores_and_argmax_against_direct_computation():
    torch.manual_seed(0)
    q, c, h, w, out = 7, 5, 6, 8, (13, 17)
    probs = torch.rand(q, c)
    mask_logits = torch.randn(q, h, w) * 3

    def resize(m):
        return F.interpolate(m[:, None], size=out, mode='bilinear', align_corners=False)[:, 0]

    scores = maskdino_semantic_postprocess(probs, mask_logits, resize, chunk_size=3)
    direct = torch.einsum('qc,qhw->chw', probs, resize(mask_logits).sigmoid())
    assert scores.shape == (c, *out)
    torch.testing.assert_close(scores, direct, rtol=1e-5, atol=1e-6)
    assert torch.equal(scores.argmax(0), direct.argmax(0))


def _sample(hw=(H, W), pad=(H, W), ori=(H, W)):
    return DetDataSample(metainfo=dict(img_shape=hw, batch_input_shape=pad, ori_shape=ori))


def test_fusion_head_all_tasks_at_once():
    head = MaskDINOFusionHead(
        num_things_classes=NUM_THINGS, num_stuff_classes=NUM_CLASSES - NUM_THINGS,
        test_cfg=dict(panoptic_on=True, semantic_on=True, instance_on=True, max_per_image=6))
    thing = _region(slice(0, 4), slice(0, 4))
    stuff = ~thing
    cls, masks = _stack([_query(0, thing), _query(2, stuff)])
    boxes = torch.tensor([[0.2, 0.25, 0.4, 0.5], [0.5, 0.5, 1.0, 1.0]])
    ori = (2 * H, 2 * W)
    (result, ) = head.predict(cls[None], masks[None], boxes[None], [_sample(ori=ori)])
    assert set(result) == {'ins_results', 'pan_results', 'sem_results'}
    ins: InstanceData = result['ins_results']
    assert (ins.labels < NUM_THINGS).all() and len(ins) > 0  # stuff is not an instance
    assert ins.masks.shape[1:] == ori
    pan = result['pan_results'].sem_seg[0]
    sem = result['sem_results'].sem_seg[0]
    assert pan.shape == sem.shape == ori
    big_thing = F.interpolate(thing[None, None].float(), size=ori, mode='bilinear',
                              align_corners=False)[0, 0] > 0.5
    assert torch.equal(sem == 0, big_thing) and torch.equal(sem == 2, ~big_thing)
    assert torch.equal(pan == INSTANCE_OFFSET, big_thing)


def test_fusion_head_ce_logits_use_softmax_without_no_object():
    head = MaskDINOFusionHead(num_things_classes=0, num_stuff_classes=3,
                              test_cfg=dict(semantic_on=True, instance_on=False))
    cls = torch.tensor([[5.0, 0.0, 0.0, 9.0],    # mostly no-object, then class 0
                        [0.0, 4.0, 0.0, -9.0]])  # class 1
    masks = torch.full((2, H, W), BIG)  # both cover the whole image
    (result, ) = head.predict(cls[None], masks[None], torch.zeros(1, 2, 4), [_sample()])
    probs = torch.softmax(cls, -1)[:, :3]
    expected = int(probs.sum(0).argmax())
    assert expected == 1 and (result['sem_results'].sem_seg == expected).all()


def test_fusion_head_ce_panoptic_drops_queries_whose_best_class_is_no_object():
    head = MaskDINOFusionHead(num_things_classes=1, num_stuff_classes=2,
                              test_cfg=dict(panoptic_on=True, instance_on=False))
    left, right = _region(slice(0, H), slice(0, 5)), _region(slice(0, H), slice(5, W))
    cls = torch.tensor([[0.0, 3.0, 0.0, 3.5],    # no-object first (p 0.51), stuff 1 second (0.31)
                        [0.0, 0.0, 4.0, -9.0]])  # stuff 2
    masks = torch.stack([torch.where(left, BIG, -BIG), torch.where(right, BIG, -BIG)])
    (result, ) = head.predict(cls[None], masks[None], torch.zeros(1, 2, 4), [_sample()])
    pan = result['pan_results'].sem_seg[0]
    assert torch.softmax(cls[0], -1)[1] > 0.25  # it would pass the score threshold
    assert (pan[left] == 3).all() and (pan[right] == 2).all()  # left stays VOID (= num_classes)


def test_panoptic_keeps_queries_by_sigmoid_score_not_by_rescored_maximum():
    """Upstream's rule: keep a query if its max sigmoid > object_mask_thr; the re-scored
    softmax(sigmoid / T) gives only its label and score."""
    num_stuff = 4  # 6 classes: a sigmoid of 0.95 spread evenly re-scores to about 1/6 < 0.25
    head = MaskDINOFusionHead(num_things_classes=NUM_THINGS, num_stuff_classes=num_stuff,
                              test_cfg=dict(panoptic_on=True, instance_on=False))
    num_classes = NUM_THINGS + num_stuff
    left, right = _region(slice(0, H), slice(0, 5)), _region(slice(0, H), slice(5, W))
    spread = torch.logit(torch.tensor([0.95] * (num_classes - 1) + [0.951]))  # best: stuff 5
    confident = torch.full((num_classes, ), -BIG)
    confident[2] = BIG
    cls = torch.stack([spread, confident])
    masks = torch.stack([torch.where(left, BIG, -BIG), torch.where(right, BIG, -BIG)])

    rescored = class_probabilities(cls, num_classes)
    assert rescored[0].max() < 0.25 < cls[0].sigmoid().max()  # the case upstream keeps
    torch.testing.assert_close(panoptic_keep_scores(cls, num_classes), cls.sigmoid().max(-1).values)
    (result, ) = head.predict(cls[None], masks[None], torch.zeros(1, 2, 4), [_sample()])
    pan = result['pan_results'].sem_seg[0]
    assert (pan[left] == 5).all() and (pan[right] == 2).all()
    # thresholding the re-scored maximum (the old rule) drops query 0: its half stays VOID
    old = maskdino_panoptic_postprocess(rescored, masks, NUM_THINGS, (H, W), _identity)
    assert (old[left] == num_classes).all() and (old[right] == 2).all()
    # CE heads keep MaskFormer's rule (the softmax probabilities themselves)
    assert panoptic_keep_scores(torch.zeros(2, num_classes + 1), num_classes) is None


def _panoptic_loop_reference(cls_probs, mask_logits, num_things, iou_thr, mask_prob_thr,
                             object_mask_thr):
    """MaskFormer's panoptic rule written query by query (numpy, Python arithmetic)."""
    probs, masks = cls_probs.numpy(), mask_logits.numpy()
    scores, labels = probs.max(1), probs.argmax(1)
    keep = scores > object_mask_thr
    out = np.full(masks.shape[1:], probs.shape[1], np.int64)
    if not keep.any():
        return out
    scores, labels = scores[keep], labels[keep]
    prob = 1 / (1 + np.exp(-masks[keep].astype(np.float64)))
    winner = (scores[:, None, None] * prob).argmax(0)
    instance_id = 1
    for k in range(len(scores)):
        own = prob[k] >= mask_prob_thr
        won = winner == k
        segment = won & own
        if own.sum() == 0 or not segment.any() or won.sum() / own.sum() < iou_thr:
            continue
        if labels[k] < num_things:
            out[segment] = labels[k] + instance_id * INSTANCE_OFFSET
            instance_id += 1
        else:
            out[segment] = labels[k]
    return out


@pytest.mark.parametrize('seed', range(4))
def test_panoptic_equals_query_by_query_rule_on_random_inputs(seed):
    """The vectorised fusion (bincounts over the winner map) against the per-query loop: random
    overlapping blobs, things and stuff, some queries mostly covered by others."""
    gen = torch.Generator().manual_seed(seed)
    q, h, w = 12, 24, 20
    cls_probs = torch.rand(q, NUM_CLASSES, generator=gen)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    centres = torch.rand(q, 2, generator=gen) * torch.tensor([h, w])
    radius = 2 + torch.rand(q, generator=gen) * 4
    dist = ((ys[None] - centres[:, 0, None, None]) ** 2 +
            (xs[None] - centres[:, 1, None, None]) ** 2).sqrt()
    logits = (radius[:, None, None] - dist) + 0.5 * torch.randn(q, h, w, generator=gen)
    for iou_thr in (0.5, 0.8):
        ours = maskdino_panoptic_postprocess(cls_probs, logits, NUM_THINGS, (h, w), _identity,
                                             object_mask_thr=0.1, iou_thr=iou_thr)
        ref = _panoptic_loop_reference(cls_probs, logits, NUM_THINGS, iou_thr, 0.5, 0.1)
        assert ours.dtype == torch.int32
        np.testing.assert_array_equal(ours.numpy(), ref)
        assert len(np.unique(ref)) > 4  # several things and stuff: the case is not trivial


def test_instance_mask_scores_in_chunks_equal_whole_tensor_formula():
    """Binary masks and mean-probability scores computed a few masks at a time (with the resize
    inside the loop) equal the whole-tensor formula, and empty masks score 0."""
    from mmdet_maskdino.models.seg_heads.instance_postprocess import binarize_and_score
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(11, 6, 7, generator=gen) * 3
    logits[3] = -5.0  # empty mask

    def resize(m):
        return F.interpolate(m[:, None], size=(24, 28), mode='bilinear',
                             align_corners=False)[:, 0]
    binary, scores = binarize_and_score(logits, 0.0, resize, chunk_size=4)
    full = resize(logits)
    ref_binary = full > 0
    ref_scores = (full.sigmoid() * ref_binary).flatten(1).sum(1) / (
        ref_binary.flatten(1).sum(1) + 1e-6)
    assert torch.equal(binary, ref_binary)
    torch.testing.assert_close(scores, ref_scores, rtol=1e-6, atol=0)
    assert scores[3] == 0
    empty_binary, empty_scores = binarize_and_score(logits[:0], 0.0, resize)
    assert empty_binary.shape == (0, 24, 28) and empty_scores.shape == (0, )
