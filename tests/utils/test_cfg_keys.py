"""Typos in train_cfg / test_cfg keys are rejected with a close-match suggestion."""
import pytest
from mmengine.registry import init_default_scope

from mmdet.registry import MODELS
from mmdet_maskdino.testing import get_repo_config
from mmdet_maskdino.utils.cfg_keys import check_cfg_keys
from mmdet_maskdino.utils.config_check import ConfigError


@pytest.mark.parametrize('section,key,suggestion', [('train_cfg', 'num_point', 'num_points'),
                                                    ('test_cfg', 'max_per_imag', 'max_per_image')])
def test_model_with_a_mistyped_cfg_key_is_refused(section, key, suggestion):
    init_default_scope('mmdet')
    cfg = get_repo_config('demo/maskdino_r18_shapes.py')
    cfg.model[section][key] = 10
    with pytest.raises(ConfigError,
                       match=rf"model\.{section}: unknown key\(s\) '{key}' \(did you mean "
                       rf"'{suggestion}'\?\)"):
        MODELS.build(cfg.model)


def test_check_cfg_keys_lists_every_unknown_key_and_the_known_ones():
    with pytest.raises(ConfigError) as err:
        check_cfg_keys(dict(iou_thr=0.5, xyz=1, tempreature=2), ['iou_thr', 'temperature'], 'x')
    assert str(err.value) == ("x: unknown key(s) 'xyz', 'tempreature' (did you mean "
                              "'temperature'?); known keys: iou_thr, temperature")
    check_cfg_keys(None, ['a'], 'x')
    check_cfg_keys(dict(a=1), ['a'], 'x')
