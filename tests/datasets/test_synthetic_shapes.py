"""The synthetic shapes generator: determinism, format validity and internal consistency."""
import hashlib
import json
import os
import os.path as osp

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mmdet_maskdino.datasets import (STUFF_CLASSES, THING_CLASSES, ShapesSpec,
                                     generate_shapes_dataset)


def _digest(root: str) -> str:
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            with open(osp.join(dirpath, name), 'rb') as f:
                h.update(name.encode() + f.read())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    spec = ShapesSpec(num_train=3, num_val=1, img_size=(48, 48), seed=5)
    generate_shapes_dataset(str(tmp_path / 'a'), spec)
    generate_shapes_dataset(str(tmp_path / 'b'), spec)
    generate_shapes_dataset(str(tmp_path / 'c'), ShapesSpec(num_train=3, num_val=1,
                                                           img_size=(48, 48), seed=6))
    assert _digest(str(tmp_path / 'a')) == _digest(str(tmp_path / 'b'))
    assert _digest(str(tmp_path / 'a')) != _digest(str(tmp_path / 'c'))


def _self_eval(ann_file: str, iou_type: str) -> float:
    gt = COCO(ann_file)
    results = []
    for ann in gt.dataset['annotations']:
        res = dict(image_id=ann['image_id'], category_id=ann['category_id'], score=1.0)
        res['bbox' if iou_type == 'bbox' else 'segmentation'] = ann[
            'bbox' if iou_type == 'bbox' else 'segmentation']
        results.append(res)
    evaluator = COCOeval(gt, gt.loadRes(results), iou_type)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return float(evaluator.stats[0])


@pytest.mark.parametrize('iou_type', ['bbox', 'segm'])
def test_ground_truth_scores_ap_one_against_itself(shapes_root, iou_type):
    assert _self_eval(osp.join(shapes_root, 'annotations/instances_train.json'), iou_type) == 1.0


def test_instance_panoptic_semantic_agree(shapes_root):
    """Every instance mask equals its panoptic segment; semantic labels match both."""
    with open(osp.join(shapes_root, 'annotations/instances_val.json')) as f:
        inst = json.load(f)
    with open(osp.join(shapes_root, 'annotations/panoptic_val.json')) as f:
        pan = json.load(f)
    assert [c['id'] for c in pan['categories']] == list(range(1, 7))
    assert [c['name'] for c in pan['categories']] == list(THING_CLASSES + STUFF_CLASSES)
    assert min(a['id'] for a in inst['annotations']) == 1
    by_image = {}
    for ann in inst['annotations']:
        by_image.setdefault(ann['image_id'], []).append(ann)
    for pan_ann in pan['annotations']:
        png = np.asarray(Image.open(osp.join(shapes_root, 'annotations/panoptic_val',
                                             pan_ann['file_name'])), dtype=np.int64)
        ids = png[..., 0] + 256 * png[..., 1] + 65536 * png[..., 2]
        semantic = np.asarray(Image.open(osp.join(shapes_root, 'annotations/semantic_val',
                                                  pan_ann['file_name'])))
        assert (ids > 0).all(), 'every pixel belongs to a segment'
        things = [s for s in pan_ann['segments_info'] if s['category_id'] <= len(THING_CLASSES)]
        instances = by_image.get(pan_ann['image_id'], [])
        assert len(things) == len(instances)
        for seg in pan_ann['segments_info']:
            assert (ids == seg['id']).sum() == seg['area']
            assert (semantic[ids == seg['id']] == seg['category_id'] - 1).all()
        for ann in instances:
            mask = mask_utils.decode(ann['segmentation']).astype(bool)
            matches = [s for s in things if (ids == s['id']).sum() == mask.sum()
                       and (ids[mask] == s['id']).all()]
            assert len(matches) == 1 and matches[0]['category_id'] == ann['category_id']


def test_dataset_has_empty_images_overlaps_and_size_spread(tmp_path):
    spec = ShapesSpec(num_train=40, num_val=2, img_size=(64, 64), empty_ratio=0.2, seed=3)
    generate_shapes_dataset(str(tmp_path), spec)
    gt = COCO(str(tmp_path / 'annotations/instances_train.json'))
    counts = [len(gt.getAnnIds(imgIds=i)) for i in gt.getImgIds()]
    assert counts.count(0) >= 2, 'some images hold no object'
    areas = [a['area'] for a in gt.dataset['annotations']]
    assert max(areas) / min(areas) > 10, 'object sizes vary by more than 10x'
    # occlusion: some visible mask is smaller than its full shape's box area would suggest
    fill = [a['area'] / (a['bbox'][2] * a['bbox'][3]) for a in gt.dataset['annotations']]
    assert min(fill) < 0.4
    assert {a['category_id'] for a in gt.dataset['annotations']} == {1, 2, 3, 4}


def test_rejects_bad_spec(tmp_path):
    with pytest.raises(ValueError, match='img_size'):
        generate_shapes_dataset(str(tmp_path), ShapesSpec(img_size=(8, 8)))
