"""The coco128 memorisation tool's config: real COCO panoptic data, 133 classes, train = eval."""
import os.path as osp
import sys

import pytest
from mmengine.registry import init_default_scope

from mmdet.registry import DATASETS
from mmdet_maskdino.testing import REPO_ROOT
from mmdet_maskdino.utils import check_config

COCO128 = osp.join(REPO_ROOT, '..', 'shared', 'data', 'coco128')
pytestmark = pytest.mark.skipif(not osp.isdir(COCO128),
                                reason=f'{COCO128} not present (needs ../shared/data)')


def _tool_module():
    sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'analysis_tools'))
    try:
        import memorise_coco128
    finally:
        sys.path.pop(0)
    return memorise_coco128


def _build_config(**kwargs):
    return _tool_module().build_config(osp.abspath(COCO128) + '/', **kwargs)


def test_memorisation_config_trains_and_evaluates_the_same_real_images():
    cfg = _build_config(num_images=8, iters=10, val_interval=5, image_size=256, queries=50,
                        lr=1e-3)
    check_config(cfg)  # types, data root, annotation files, 80 things / 53 stuff vs metainfo
    init_default_scope('mmdet')
    train = DATASETS.build(cfg.train_dataloader.dataset)
    val = DATASETS.build(cfg.val_dataloader.dataset)
    assert len(train) == len(val) == 8
    assert [train.get_data_info(i)['img_id'] for i in range(8)] == \
        [val.get_data_info(i)['img_id'] for i in range(8)]
    meta = train.metainfo
    assert (len(meta['thing_classes']), len(meta['stuff_classes'])) == (80, 53)
    sample = train[0]['data_samples']
    assert max(sample.img_shape) == 256
    sem = sample.gt_sem_seg.sem_seg
    assert ((sem >= 80) & (sem < 133)).any()  # stuff pixels from the panoptic PNG
    assert cfg.model.panoptic_head.num_queries == 50


def test_ground_truth_as_prediction_scores_ap_1_on_the_subset(tmp_path):
    """mmdet's CocoMetric evaluates every image of its ann_file: on 8 of coco128's 100 images the
    tool's subset file is what makes perfect predictions score AP 1."""
    import torch
    from mmdet.registry import METRICS
    from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
    from mmdet_maskdino.models.seg_heads import MaskDINOFusionHead
    tool = _tool_module()
    cfg = _build_config(num_images=8, iters=10, val_interval=5, image_size=256, queries=50,
                        lr=1e-3)
    init_default_scope('mmdet')
    pipeline = cfg.val_dataloader.dataset.pipeline  # GT at the network's scale: load, then resize
    pipeline[1], pipeline[2] = pipeline[2], pipeline[1]
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    subset = tool.subset_instances_json(
        osp.join(COCO128, 'annotations', 'instances_train2017.json'), str(tmp_path / 'sub.json'),
        [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))])
    head = MaskDINOFusionHead(num_things_classes=80, num_stuff_classes=53,
                              test_cfg=dict(instance_on=True, max_per_image=100))
    metrics = {}
    for name, ann_file in (('subset', subset), ('all 100', cfg.val_evaluator[1].ann_file)):
        metric = METRICS.build(dict(type='CocoMetric', ann_file=ann_file, metric=['bbox']))
        metric.dataset_meta = dataset.metainfo
        for i in range(len(dataset)):
            sample = dataset[i]['data_samples']
            h, w = sample.img_shape
            sample.set_metainfo(dict(batch_input_shape=(h, w)))
            gt = sample.gt_instances
            cls = torch.full((len(gt), 133), -20.0)
            cls[torch.arange(len(gt)), gt.labels] = 20.0
            masks = torch.where(gt.masks.to_tensor(torch.bool, 'cpu'), 20.0, -20.0)
            boxes = bbox_xyxy_to_cxcywh(gt.bboxes.tensor / torch.tensor([w, h, w, h]))
            (result, ) = head.predict(cls[None], masks[None], boxes[None], [sample])
            sample.pred_instances = result['ins_results']
            metric.process({}, [sample.to_dict()])
        metrics[name] = metric.evaluate(len(dataset))['coco/bbox_mAP']
    assert metrics['subset'] >= 0.95, metrics  # rescaled boxes: exact up to rounding
    assert metrics['all 100'] < 0.5, metrics  # the other 92 images' objects count as missed
