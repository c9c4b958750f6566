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


def _build_config(**kwargs):
    sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'analysis_tools'))
    try:
        from memorise_coco128 import build_config
    finally:
        sys.path.pop(0)
    return build_config(osp.abspath(COCO128) + '/', **kwargs)


def test_memorisation_config_trains_and_evaluates_the_same_real_images():
    cfg = _build_config(num_images=8, iters=10, val_interval=5, image_size=256, queries=50,
                        lr=1e-3)
    check_config(cfg)  # types, data root, annotation files, 80 things / 53 stuff vs metainfo
    init_default_scope('mmdet')
    train = DATASETS.build(cfg.train_dataloader.dataset)
    val = DATASETS.build(cfg.val_dataloader.dataset)
    assert len(train) == len(val) == 8
    assert [d['img_id'] for d in train.data_list] == [d['img_id'] for d in val.data_list]
    meta = train.metainfo
    assert (len(meta['thing_classes']), len(meta['stuff_classes'])) == (80, 53)
    sample = train[0]['data_samples']
    assert max(sample.img_shape) == 256
    sem = sample.gt_sem_seg.sem_seg
    assert ((sem >= 80) & (sem < 133)).any()  # stuff pixels from the panoptic PNG
    assert cfg.model.panoptic_head.num_queries == 50
