"""Panoptic targets in the annotation's ``segments_info`` order (upstream's), through the
dataset, the demo panoptic config's training pipeline and the head's ``get_targets``, on a
hand-built panoptic annotation."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

from mmdet.registry import DATASETS, TRANSFORMS
from mmdet_maskdino.testing import build_small_maskdino, get_repo_config

H, W = 32, 48
CATEGORIES = [dict(id=i + 1, name=n, isthing=int(i < 4)) for i, n in
              enumerate(('circle', 'square', 'triangle', 'cross', 'sky', 'ground'))]
# (segment id, category id, iscrowd, region rows, cols) in segments_info order; sky is what is left
SEGMENTS = [(10, 6, 0, (24, 32), (0, 48)),  # ground (stuff)
            (11, 2, 0, (2, 10), (4, 14)),  # square
            (12, 5, 0, None, None),  # sky (stuff): the rest
            (13, 1, 1, (12, 20), (30, 40)),  # a crowd of circles: not a target
            (14, 3, 0, (12, 20), (4, 12))]  # triangle
#: contiguous labels (things first) of the non-crowd segments, in segments_info order
EXPECTED_LABELS = [5, 1, 4, 2]


def _id_map() -> np.ndarray:
    ids = np.full((H, W), 12, np.int64)
    for seg_id, _, _, rows, cols in SEGMENTS:
        if rows is not None:
            ids[rows[0]:rows[1], cols[0]:cols[1]] = seg_id
    return ids


@pytest.fixture(scope='module')
def panoptic_root(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp('panoptic')
    (root / 'train').mkdir()
    (root / 'annotations' / 'panoptic_train').mkdir(parents=True)
    img = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    cv2.imwrite(str(root / 'train' / 'a.jpg'), img)
    ids = _id_map()
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
    cv2.imwrite(str(root / 'annotations' / 'panoptic_train' / 'a.png'), rgb[..., ::-1])  # BGR
    infos = []
    for seg_id, cat, crowd, _, _ in SEGMENTS:
        ys, xs = np.nonzero(ids == seg_id)
        infos.append(dict(id=seg_id, category_id=cat, iscrowd=crowd, area=int(len(xs)),
                          bbox=[int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                                int(ys.max() - ys.min() + 1)]))
    ann = dict(images=[dict(id=1, file_name='a.jpg', height=H, width=W)], categories=CATEGORIES,
               annotations=[dict(image_id=1, file_name='a.png', segments_info=infos)])
    with open(root / 'annotations' / 'panoptic_train.json', 'w') as f:
        json.dump(ann, f)
    return str(root) + '/'


def _dataset(root: str, loader: dict, dataset_type: str = 'CheckedCocoPanopticDataset'):
    """The demo panoptic config's training dataset on the hand-built data, flip off and resized
    to its own size, with the given loading transform."""
    init_default_scope('mmdet')
    cfg = get_repo_config('demo/maskdino_r18_shapes-panoptic.py').train_dataloader.dataset
    pipeline = []
    for t in cfg.pipeline:
        if t.type == 'RandomFlip':
            t.prob = 0.0
        if t.type == 'Resize':
            t.scale = (W, H)
        pipeline.append(loader if t.type.startswith('LoadPanoptic') else t)
    assert loader in pipeline
    cfg.update(type=dataset_type, data_root=root, pipeline=pipeline)
    return DATASETS.build(cfg)


def test_config_loads_every_segment_in_annotation_order(panoptic_root):
    cfg = get_repo_config('demo/maskdino_r18_shapes-panoptic.py')
    loader = [t for t in cfg.train_dataloader.dataset.pipeline if 'Panoptic' in t.type]
    assert loader[0].type == 'LoadPanopticSegments'
    sample = _dataset(panoptic_root, loader[0])[0]['data_samples']
    gt = sample.gt_instances
    assert gt.labels.tolist() == EXPECTED_LABELS
    ids = _id_map()
    kept = [s for s in SEGMENTS if not s[2]]
    masks = gt.masks.to_ndarray().astype(bool)
    for mask, (seg_id, *_) in zip(masks, kept):
        assert np.array_equal(mask, ids == seg_id)
    boxes = gt.bboxes.tensor.tolist()
    for box, (seg_id, *_) in zip(boxes, kept):  # boxes of the masks, exclusive max
        ys, xs = np.nonzero(ids == seg_id)
        assert box == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_head_targets_keep_segments_info_order(panoptic_root):
    """Dataset -> the config's pipeline -> data preprocessor -> ``get_targets``: targets in
    segments_info order (upstream's); mmdet's loader gives things first, then stuff by class."""
    torch.manual_seed(0)
    model = build_small_maskdino(num_classes=None, config='demo/maskdino_r18_shapes-panoptic.py')
    ids = torch.from_numpy(_id_map())

    def targets(loader, dataset_type='CheckedCocoPanopticDataset'):
        item = _dataset(panoptic_root, loader, dataset_type)[0]
        batch = model.data_preprocessor(dict(inputs=[item['inputs']],
                                             data_samples=[item['data_samples']]), True)
        return model.panoptic_head.get_targets(batch['data_samples'])[0]

    ours = targets(dict(type='LoadPanopticSegments', with_seg=True))
    assert ours.labels.tolist() == EXPECTED_LABELS
    kept = [s for s in SEGMENTS if not s[2]]
    for mask, (seg_id, *_) in zip(ours.masks, kept):  # padded to the batch, same pixels
        assert mask[:H, :W].equal(ids == seg_id) and not mask[H:].any() and not mask[:, W:].any()
    mmdet = targets(dict(type='LoadPanopticAnnotations', with_bbox=True, with_mask=True,
                         with_seg=True), 'CocoPanopticDataset')
    assert mmdet.labels.tolist() == [1, 2, 4, 5]
    assert sorted(mmdet.labels.tolist()) == sorted(ours.labels.tolist())


def test_loader_needs_iscrowd_and_names_the_file(panoptic_root):
    """mmdet's CocoPanopticDataset drops ``iscrowd`` (a crowd thing looks like stuff there)."""
    dataset = _dataset(panoptic_root, dict(type='LoadPanopticSegments'), 'CocoPanopticDataset')
    with pytest.raises(KeyError, match=r"a\.png.*iscrowd.*CheckedCocoPanopticDataset"):
        dataset[0]


def test_transform_without_segments_gives_empty_targets(panoptic_root):
    load = TRANSFORMS.build(dict(type='LoadPanopticSegments'))
    results = dict(seg_map_path=osp.join(panoptic_root, 'annotations/panoptic_train/a.png'),
                   segments_info=[dict(id=13, category=0, is_thing=False, iscrowd=True)],
                   ori_shape=(H, W))
    out = load(results)
    assert len(out['gt_masks']) == 0 and out['gt_bboxes'].tensor.shape == (0, 4)
    assert out['gt_bboxes_labels'].shape == (0,) and 'gt_seg_map' not in out
