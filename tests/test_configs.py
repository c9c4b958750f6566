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
