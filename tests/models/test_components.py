"""Mask DINO's pieces against independent, hand-worked expectations."""
import numpy as np
import torch

from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from mmdet_maskdino.models.layers import (MaskDINODnQueryGenerator, build_dn_attn_mask,
                                          select_queries)
from mmdet_maskdino.models.utils import (BoxInitType, init_anchor_boxes, mask2box_bitmask,
                                         mask2box_tight)


# ----------------------------------------------------------------------------- mask2box
def _masks():
    m = torch.zeros(3, 6, 8, dtype=torch.bool)
    m[0, 1:4, 2:7] = True          # rows 1..3, cols 2..6
    m[1, 5, 0] = True              # a single pixel in the corner
    return m                       # m[2] empty


def test_mask2box_tight_hand_made():
    boxes = mask2box_tight(_masks())
    assert boxes.tolist() == [[2, 1, 6, 3], [0, 5, 0, 5], [1e8, 1e8, 0, 0]]


def test_mask2box_bitmask_hand_made():
    boxes = mask2box_bitmask(_masks())
    assert boxes.tolist() == [[2, 1, 7, 4], [0, 5, 1, 6], [0, 0, 0, 0]]


def test_init_anchor_boxes_normalises_by_mask_size_and_clamps_empty():
    logits = torch.where(_masks(), 1.0, -1.0)[None]  # (1, 3, 6, 8)
    ref = init_anchor_boxes(logits, BoxInitType.BITMASK).sigmoid()[0]
    # mask 0: x 2..7, y 1..4 -> cx 4.5/8, cy 2.5/6, w 5/8, h 3/6
    torch.testing.assert_close(ref[0], torch.tensor([4.5 / 8, 2.5 / 6, 5 / 8, 3 / 6]))
    assert torch.all(ref[2] <= 1e-5 + 1e-7)  # empty -> all zeros, clamped by inverse sigmoid
    tight = init_anchor_boxes(logits, BoxInitType.MASK2BOX)
    assert torch.isfinite(tight).all()  # the empty mask's 1e8 corner is clamped, not inf/nan


# ----------------------------------------------------------------------------- selection
def test_query_selection_picks_top_k_by_max_class_logit():
    torch.manual_seed(0)
    memory = torch.randn(2, 50, 8)
    proposals = torch.randn(2, 50, 4)
    cls = torch.nn.Linear(8, 3)
    reg = torch.nn.Linear(8, 4)
    sel = select_queries(memory, proposals, cls, reg, num_queries=7)
    scores = cls(memory).max(-1).values
    for b in range(2):
        expected = set(np.argsort(-scores[b].detach().numpy())[:7].tolist())
        assert set(sel.index[b].tolist()) == expected
        torch.testing.assert_close(sel.content[b], memory[b, sel.index[b]])
        torch.testing.assert_close(sel.ref_unsig[b],
                                   (reg(memory) + proposals)[b, sel.index[b]])


# ----------------------------------------------------------------------------- denoising
def _sample(boxes, labels, shape=(100, 200)):
    s = DetDataSample(metainfo=dict(img_shape=shape, batch_input_shape=shape))
    s.gt_instances = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32).view(-1, 4),
                                  labels=torch.tensor(labels, dtype=torch.long))
    return s


def test_dn_attention_mask_exact_pattern():
    mask = build_dn_attn_mask(num_groups=2, group_size=2, num_queries=3, device='cpu')
    expected = torch.tensor([
        # g0 g0 g1 g1 m  m  m
        [0, 0, 1, 1, 0, 0, 0],
        [0, 0, 1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(mask, expected)


def test_dn_groups_noise_bounds_and_indices():
    torch.manual_seed(0)
    gen = MaskDINODnQueryGenerator(num_classes=5, embed_dims=16, num_matching_queries=4,
                                   label_noise_scale=0.4, box_noise_scale=0.4,
                                   group_cfg=dict(dynamic=True, num_dn_queries=10))
    samples = [_sample([[20, 10, 60, 50], [100, 20, 180, 90], [0, 0, 10, 10]], [1, 2, 3]),
               _sample([[50, 50, 150, 90]], [4])]
    dn = gen(samples)
    assert dn.num_groups == 10 // 3 and dn.group_size == 3
    assert dn.query.shape == (2, 9, 16) and dn.ref_unsig.shape == (2, 9, 4)
    assert dn.attn_mask.shape == (13, 13)
    gt = torch.tensor([[40, 30, 40, 40], [140, 55, 80, 70], [5, 5, 10, 10]]) / torch.tensor(
        [200, 100, 200, 100])
    for g in range(3):
        box = dn.ref_unsig[0, g * 3:(g + 1) * 3].sigmoid()
        bound = torch.cat([gt[:, 2:] / 2, gt[:, 2:]], 1) * 0.4 + 1e-5
        assert ((box - gt).abs() <= bound).all()
    # image 1 has one GT: slots 1, 2 of every group are padding (zero query)
    assert torch.all(dn.query[1, [1, 2, 4, 5, 7, 8]] == 0)
    idx = dn.positive_indices([3, 1])
    assert idx[1].tolist() == [[0, 3, 6], [0, 0, 0]]
    assert idx[0][0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8]


def test_dn_label_flip_rate():
    torch.manual_seed(0)
    gen = MaskDINODnQueryGenerator(num_classes=1000, embed_dims=4, num_matching_queries=1,
                                   label_noise_scale=0.4, box_noise_scale=0.4,
                                   group_cfg=dict(dynamic=True, num_dn_queries=100))
    labels = torch.zeros(20000, dtype=torch.long)
    flipped = (gen._noise_labels(labels) != 0).float().mean().item()
    assert abs(flipped - 0.2 * 999 / 1000) < 0.01  # 20% resampled, a few land on the same class


def test_no_dn_queries_without_gt_but_the_embedding_stays_in_the_graph():
    gen = MaskDINODnQueryGenerator(num_classes=5, embed_dims=8, num_matching_queries=4,
                                   label_noise_scale=0.4, box_noise_scale=0.4,
                                   group_cfg=dict(dynamic=True, num_dn_queries=10))
    dn = gen([_sample([], []), _sample([], [])])
    assert dn.num_groups == 0 and dn.num_queries == 0
    assert dn.query.shape == (2, 0, 8) and dn.ref_unsig.shape == (2, 0, 4)
    assert dn.attn_mask.shape == (4, 4) and not dn.attn_mask.any()
    assert dn.positive_indices([0, 0])[0].shape == (2, 0)
    dn.query.sum().backward()  # DDP needs the label embedding used on every rank
    assert torch.equal(gen.label_embedding.weight.grad, torch.zeros(5, 8))


def test_dn_draws_follow_upstream_order():
    """One batch-wide draw per kind, entries group-major then image then GT (as upstream): with
    torch's generator seeded, the flips and the box noise are the first draws of that order."""
    gen = MaskDINODnQueryGenerator(num_classes=5, embed_dims=4, num_matching_queries=1,
                                   label_noise_scale=1.0, box_noise_scale=0.4,
                                   group_cfg=dict(dynamic=True, num_dn_queries=4))
    samples = [_sample([[20, 10, 60, 50], [100, 20, 180, 90]], [1, 2]),
               _sample([[50, 50, 150, 90]], [4])]
    torch.manual_seed(5)
    dn = gen(samples)
    torch.manual_seed(5)
    known = torch.tensor([1, 2, 4, 1, 2, 4])  # 2 groups x (image 0: 2 GT, image 1: 1 GT)
    flip = torch.rand(6) < 0.5
    new = torch.randint(0, 5, (int(flip.sum()), ))
    u = torch.rand(6, 4)
    labels = known.clone()
    labels[flip] = new
    slots = [(0, 0), (0, 1), (1, 0), (0, 2), (0, 3), (1, 2)]  # (image, slot) of each entry
    for (b, slot), label in zip(slots, labels):
        assert torch.equal(dn.query[b, slot], gen.label_embedding.weight[label])
    gt = torch.tensor([[40, 30, 40, 40], [140, 55, 80, 70], [100, 70, 100, 40]]) / torch.tensor(
        [200, 100, 200, 100])
    gt = gt.repeat(2, 1)
    noised = (gt + (u * 2 - 1) * torch.cat([gt[:, 2:] / 2, gt[:, 2:]], 1) * 0.4).clamp(0, 1)
    b, slot = zip(*slots)
    torch.testing.assert_close(dn.ref_unsig[list(b), list(slot)].sigmoid(), noised, atol=1e-5,
                               rtol=0)
    assert torch.all(dn.query[1, [1, 3]] == 0)  # image 1's padding slots


def test_contrastive_option_uses_mmdet_cdn():
    gen = MaskDINODnQueryGenerator(num_classes=5, embed_dims=8, num_matching_queries=4,
                                   label_noise_scale=0.5, box_noise_scale=1.0, contrastive=True,
                                   group_cfg=dict(dynamic=True, num_dn_queries=10))
    dn = gen([_sample([[20, 10, 60, 50], [100, 20, 180, 90]], [1, 2])])
    assert dn.contrastive and dn.group_size == 4 and dn.num_groups == 5
    assert dn.query.shape[1] == 20


# ----------------------------------------------------------------------------- init
def test_class_head_upstream_default_init_or_prior():
    import math
    from mmdet_maskdino.testing import build_small_maskdino
    torch.manual_seed(0)
    prior = build_small_maskdino(cls_prior_prob=0.01).panoptic_head.cls_branch.bias
    assert torch.allclose(prior, torch.full_like(prior, -math.log((1 - 0.01) / 0.01)))
    default = build_small_maskdino().panoptic_head.cls_branch.bias  # upstream's: no prior
    bound = 1 / math.sqrt(64)  # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert default.abs().max() <= bound and default.std() > 0
