"""UP-DETR pretext for Mask DINO: patch sampling, group mask, reconstruction loss, overfitting,
and pretraining-to-fine-tuning checkpoint loading."""
import os

import numpy as np
import pytest
import torch

from mmdet_maskdino.testing import get_repo_config
from projects.updetr.tests.pretext_helpers import (PRETEXT_CONFIG, pretext_batch, pretext_model,
                                                  shapes_image)
from projects.updetr.updetr import (FolderImageDataset, feature_reconstruction_loss,
                                    group_attention_mask, own_group_ious,
                                    pretrained_transformer_state, sample_patch_boxes)



# ---------------------------------------------------------------- patch sampling
@pytest.mark.parametrize('size', [(128, 128), (37, 200), (12, 9)])
def test_patch_boxes_stay_inside_with_sides_in_range(size):
    h, w = size
    boxes = sample_patch_boxes(np.random.default_rng(0), h, w, 500, min_side=8)
    x0, y0, x1, y1 = boxes.T
    assert boxes.shape == (500, 4) and boxes.dtype == np.float32
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= w).all() and (y1 <= h).all()
    bw, bh = x1 - x0, y1 - y0
    assert bw.min() >= min(8, w) and bw.max() <= max(min(8, w), w - 8)
    assert bh.min() >= min(8, h) and bh.max() <= max(min(8, h), h - 8)
    if h >= 100 and w >= 100:  # the whole range is used (uniform)
        assert bw.min() <= 12 and bw.max() >= w - 12


def test_patch_sampling_is_deterministic_for_a_seed_and_image():
    from projects.updetr.updetr import SampleQueryPatches
    img = np.random.default_rng(1).uniform(0, 255, (64, 80, 3)).astype(np.float32)
    t = SampleQueryPatches(num_patches=4, patch_size=16, seed=3)
    a = t.transform(dict(img=img, img_id=7))
    b = t.transform(dict(img=img, img_id=7))
    c = t.transform(dict(img=img, img_id=8))
    assert np.array_equal(a['gt_bboxes'].numpy(), b['gt_bboxes'].numpy())
    assert np.array_equal(a['query_patches'], b['query_patches'])
    assert not np.array_equal(a['gt_bboxes'].numpy(), c['gt_bboxes'].numpy())
    assert a['query_patches'].shape == (4, 3, 16, 16)
    # the box-shaped mask target is the box
    x0, y0, x1, y1 = a['gt_bboxes'].numpy()[0].astype(int)
    mask = a['gt_masks'].masks[0]
    assert mask.sum() == (x1 - x0) * (y1 - y0) and mask[y0:y1, x0:x1].all()
    # unflipped patch 0 is the resized crop
    t2 = SampleQueryPatches(num_patches=4, patch_size=16, seed=3, flip_prob=0.0)
    r = t2.transform(dict(img=img, img_id=7))
    import mmcv
    x0, y0, x1, y1 = r['gt_bboxes'].numpy()[0].astype(int)
    crop = mmcv.imresize(img[y0:y1, x0:x1], (16, 16)).transpose(2, 0, 1)
    np.testing.assert_allclose(r['query_patches'][0], crop)


# ---------------------------------------------------------------- attention mask, loss
def test_group_attention_mask_pattern():
    mask = group_attention_mask(3, 2)
    expected = torch.tensor([[0, 0, 1, 1, 1, 1],
                             [0, 0, 1, 1, 1, 1],
                             [1, 1, 0, 0, 1, 1],
                             [1, 1, 0, 0, 1, 1],
                             [1, 1, 1, 1, 0, 0],
                             [1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    assert torch.equal(mask, expected)


def test_reconstruction_loss_on_hand_made_vectors():
    pred = torch.tensor([[3.0, 4.0], [1.0, 0.0]])    # normalised: (0.6, 0.8), (1, 0)
    target = torch.tensor([[0.0, 2.0], [-5.0, 0.0]])  # normalised: (0, 1), (-1, 0)
    # |(0.6, -0.2)|^2 = 0.40; |(2, 0)|^2 = 4  -> (0.40 + 4) / 2
    loss = feature_reconstruction_loss(pred, target, avg_factor=2)
    assert loss.item() == pytest.approx(2.2, abs=1e-6)
    assert feature_reconstruction_loss(pred, 7 * pred, 2).item() == pytest.approx(0, abs=1e-6)


# ---------------------------------------------------------------- model
def test_pretext_overfits_one_image_and_finds_its_patches():
    """120 AdamW steps on one image with fixed patches: the total loss falls >= 4x, and every
    patch is found (its best query's IoU, averaged over the patches, > 0.5; the initial anchors
    give far less)."""
    from mmdet.structures.bbox import bbox_overlaps
    cfg, model = pretext_model()
    model.panoptic_head.feature_drop = 0.0
    batch = pretext_batch(model, cfg, shapes_image())
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    first = None
    for _ in range(120):
        losses = model(**batch, mode='loss')
        assert {'loss_rec', 'd0.loss_rec', 'loss_mask', 'loss_bbox'} <= set(losses)
        total = sum(losses.values())
        first = total.item() if first is None else first
        optim.zero_grad()
        total.backward()
        optim.step()
    assert total.item() < first / 4, (first, total.item())
    model.eval()
    with torch.no_grad():
        pred = model(**batch, mode='predict')[0]
    gt = pred.gt_instances.bboxes
    gt = getattr(gt, 'tensor', gt)
    ious = bbox_overlaps(pred.pred_instances.bboxes, gt)  # (queries, patches)
    best = ious.max(0).values  # each patch: its best query
    own = own_group_ious(pred.pred_instances.bboxes, pred.pred_instances.patch_index, gt)
    print('best IoU per patch', best, 'within its own group', own)
    assert best.mean() > 0.5, best


def test_backbone_is_frozen_and_gets_no_gradient():
    cfg, model = pretext_model()
    batch = pretext_batch(model, cfg, shapes_image())
    model.train()
    assert not model.backbone.training
    sum(model(**batch, mode='loss').values()).backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert model.panoptic_head.patch_proj.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------- pretrain -> fine-tune
@pytest.mark.parametrize('pretext_config,target_config', [
    ('updetr_maskdino_r18_shapes.py', 'demo/maskdino_r18_shapes.py'),
    ('updetr_selection_maskdino_r18_shapes.py', 'demo/maskdino_r18_shapes.py'),
    ('updetr_maskdino_r50_coco.py', 'maskdino_r50.py'),
])
def test_pretext_checkpoint_loads_into_finetuning_configs(pretext_config, target_config):
    from mmengine.registry import init_default_scope

    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    models = []
    for path in ('../projects/updetr/configs/' + pretext_config, target_config):
        cfg = get_repo_config(path)
        cfg.model.backbone.init_cfg = None  # offline: no ImageNet download
        torch.manual_seed(len(models))
        models.append(MODELS.build(cfg.model))
    pretext, target = models
    state, report = pretrained_transformer_state(pretext.state_dict(), target)
    # every key of both models is accounted for exactly once
    pre_keys, tgt_keys = set(pretext.state_dict()), set(target.state_dict())
    accounted = (report.transferred + report.pretext_only + report.skipped +
                 report.shape_mismatch)
    assert sorted(accounted) == sorted(pre_keys)
    assert set(report.missing) == {k for k in tgt_keys - pre_keys if not k.startswith('backbone.')}
    assert any(k.startswith('panoptic_head.pixel_decoder.encoder.') for k in report.transferred)
    assert any(k.startswith('panoptic_head.decoder.layers.') for k in report.transferred)
    assert 'panoptic_head.cls_branch.weight' in report.shape_mismatch  # 1 patch class vs C
    assert 'panoptic_head.patch_proj.weight' in report.pretext_only
    if 'selection' in pretext_config:  # patch-conditioned selection trains query selection's
        assert 'panoptic_head.memory_trans_fc.weight' in report.transferred  # token projection
        assert 'panoptic_head.patch_key.weight' in report.pretext_only
    else:
        assert 'panoptic_head.memory_trans_fc.weight' in report.missing
    assert all(k.startswith('backbone.') for k in report.skipped) and report.skipped
    target.load_state_dict(state, strict=True)
    for key in report.transferred:
        assert torch.equal(target.state_dict()[key], pretext.state_dict()[key]), key
    assert 'transferred' in report.summary()


def test_transfer_refuses_a_checkpoint_with_unknown_modules():
    from mmengine.registry import init_default_scope

    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    target = MODELS.build(get_repo_config('demo/maskdino_r18_shapes.py').model)
    with pytest.raises(KeyError, match='roi_head.fc'):
        pretrained_transformer_state({'roi_head.fc.weight': torch.zeros(2)}, target)


def test_folder_dataset_reads_images_without_annotations(tmp_path):
    from PIL import Image
    (tmp_path / 'img' / 'sub').mkdir(parents=True)
    Image.new('RGB', (30, 20)).save(tmp_path / 'img' / 'b.png')
    Image.new('RGB', (10, 40)).save(tmp_path / 'img' / 'sub' / 'a.jpg')
    (tmp_path / 'img' / 'notes.txt').write_text('not an image')
    ds = FolderImageDataset(data_root=str(tmp_path), data_prefix=dict(img='img/'),
                            pipeline=[], lazy_init=False)
    assert len(ds) == 2
    infos = [ds.get_data_info(i) for i in range(2)]
    assert [(i['width'], i['height']) for i in infos] == [(30, 20), (10, 40)]
    assert all(i['instances'] == [] for i in infos)
    (tmp_path / 'img' / 'broken.png').write_bytes(b'\x89PNG broken')
    from mmdet_maskdino.datasets.checks import DataError
    with pytest.raises(DataError, match='broken.png'):
        FolderImageDataset(data_root=str(tmp_path), data_prefix=dict(img='img/'), pipeline=[])


def test_patch_metric_against_hand_made_predictions():
    """Perfect boxes in their own group: AP = AP_own = 1; the same boxes given to the wrong
    groups: AP stays 1 (the patches are found), AP_own drops to 0."""
    from projects.updetr.updetr import PatchLocalisationMetric
    gt = torch.tensor([[0., 0., 20., 20.], [30., 30., 60., 50.]])
    boxes = torch.cat([gt, torch.tensor([[70., 70., 90., 90.], [5., 60., 15., 80.]])])
    scores = torch.tensor([0.9, 0.8, 0.3, 0.2])

    def run(group):
        metric = PatchLocalisationMetric()
        metric.process({}, [dict(gt_instances=dict(bboxes=gt), scale_factor=(1.0, 1.0),
                                 pred_instances=dict(bboxes=boxes, scores=scores,
                                                     patch_index=torch.tensor(group)))])
        return metric.compute_metrics(metric.results)
    right = run([0, 1, 0, 1])
    assert right['AP'] == pytest.approx(1.0) and right['AP_own'] == pytest.approx(1.0)
    wrong = run([1, 0, 1, 0])
    assert wrong['AP'] == pytest.approx(1.0) and wrong['AP_own'] == pytest.approx(0.0)


COCO128 = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'shared', 'data',
                       'coco128')


@pytest.mark.skipif(not os.path.isdir(COCO128), reason=f'{COCO128} not present (needs ../shared)')
def test_pretext_pipeline_on_coco128_images_without_annotations():
    """The folder dataset + the pretext's training pipeline on real COCO images (labels unread):
    every sample has 10 patch boxes inside its (resized) image and 10 patches."""
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg = get_repo_config('../' + PRETEXT_CONFIG)
    ds = FolderImageDataset(data_root=COCO128, data_prefix=dict(img='train2017/'),
                            pipeline=cfg.train_pipeline)
    assert len(ds) == 100
    for i in (0, 57):
        sample = ds[i]['data_samples']
        h, w = sample.metainfo['img_shape']
        boxes = sample.gt_instances.bboxes.tensor
        assert boxes.shape == (10, 4) and sample.query_patches.shape == (10, 3, 64, 64)
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
