"""Every config of the repository loads (mmdet:: bases resolved) and builds its model."""
import glob
import os.path as osp

import pytest
from mmengine.registry import init_default_scope

from mmdet.registry import MODELS
from mmdet_maskdino.testing import REPO_ROOT, get_repo_config
from mmdet_maskdino.utils import check_config

CONFIGS = sorted(osp.relpath(p, osp.join(REPO_ROOT, 'configs'))
                 for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'), recursive=True))


def test_there_are_configs():
    assert 'maskdino_r50.py' in CONFIGS and len(CONFIGS) >= 6


@pytest.mark.parametrize('config', CONFIGS)
def test_config_loads_and_builds(config):
    cfg = get_repo_config(config)
    assert cfg.custom_imports.imports == ['mmdet_maskdino']
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
    # every registered type resolves (data roots are COCO's, absent here: only types are checked)
    from mmdet_maskdino.utils.config_check import _check_types
    assert _check_types(cfg, config) == []


def test_released_default_matches_upstream_facts():
    cfg = get_repo_config('maskdino_r50.py')
    head = cfg.model.panoptic_head
    assert head.num_queries == 300 and head.box_init == 'mask2box'
    assert head.pixel_decoder.num_extra_levels == 1 and head.pixel_decoder.level_order == \
        'low2high'
    assert head.pixel_decoder.encoder.layer_cfg.ffn_cfg.feedforward_channels == 2048
    assert head.transformer_decoder.num_layers == 9
    assert head.dn_cfg.group_cfg.num_dn_queries == 100 and head.dn_cfg.box_noise_scale == 0.4
    assert cfg.optim_wrapper.optimizer.lr == 1e-4 and cfg.optim_wrapper.clip_grad.max_norm == 0.01
    assert cfg.train_cfg.max_iters == 368750
    costs = [c.weight for c in cfg.model.train_cfg.assigner.match_costs]
    assert costs == [4.0, 5.0, 2.0, 5.0, 5.0]


def test_missing_coco_root_fails_clearly():
    cfg = get_repo_config('maskdino_r50.py')
    cfg.train_dataloader.dataset.data_root = '/nonexistent/coco/'
    with pytest.raises(Exception, match=r'train_dataloader\.dataset\.data_root=.*does not exist'):
        check_config(cfg)


def test_panoptic_and_semantic_configs_match_upstream_facts():
    pan = get_repo_config('maskdino/maskdino_r50_8xb2-lsj-50e_coco-panoptic.py')
    head = pan.model.panoptic_head
    assert (head.num_things_classes, head.num_stuff_classes) == (80, 53)
    assert head.box_init == 'no' and head.num_queries == 300 and head.two_stage
    assert pan.train_dataloader.dataset.type == 'CheckedCocoPanopticDataset'
    assert [m.type for m in pan.val_evaluator] == ['CocoPanopticMetric', 'CocoMetric',
                                                   'SemSegMetric']
    assert pan.model.test_cfg.panoptic_on and pan.model.test_cfg.object_mask_thr == 0.25
    assert pan.model.test_cfg.iou_thr == 0.8 and pan.model.test_cfg.temperature == 0.06
    # PANO_BOX_LOSS False: stuff boxes matched and supervised like things' (no ThingBoxCost)
    assert not head.get('criterion', {}).get('thing_boxes_only', False)
    assert [c.type for c in pan.model.train_cfg.assigner.match_costs] == [
        'FocalLossCost', 'BBoxL1Cost', 'MaskDINOGIoUCost', 'PointMaskBCECost', 'DiceCost']
    # targets in segments_info order, stuff included (upstream's)
    assert pan.train_dataloader.dataset.pipeline[1].type == 'LoadPanopticSegments'

    ade = get_repo_config('maskdino/maskdino_r50_8xb2-160k_ade20k-semantic.py')
    head = ade.model.panoptic_head
    assert (head.num_things_classes, head.num_stuff_classes) == (0, 150)
    assert head.num_queries == 100 and not head.two_stage and head.box_init == 'no'
    assert head.loss_cls.type == 'CrossEntropyLoss' and head.loss_cls.class_weight[-1] == 0.1
    assert len(head.loss_cls.class_weight) == 151
    assert ade.model.train_cfg.assigner.match_costs[0].type == 'ClassificationCost'
    assert ade.train_cfg.max_iters == 160000 and ade.train_dataloader.dataset.type == \
        'CheckedADE20KSegDataset' and ade.train_dataloader.dataset.reduce_zero_label
    assert ade.model.test_cfg == dict(panoptic_on=False, semantic_on=True, instance_on=False)
