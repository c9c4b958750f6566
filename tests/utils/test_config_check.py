"""Bad configs fail early with the config file and the field named."""
import json
import os.path as osp

import pytest

from mmdet_maskdino.testing import get_repo_config, mmdet_tool, run_tool
from mmdet_maskdino.utils import ConfigError, check_config

DEMO = 'demo/mask2former_r18_shapes.py'


def _cfg(shapes_root):
    cfg = get_repo_config(DEMO)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = shapes_root
    cfg.val_evaluator.ann_file = osp.join(shapes_root, 'annotations/instances_val.json')
    cfg.test_evaluator = cfg.val_evaluator
    return cfg


def test_valid_config_passes(shapes_root):
    check_config(_cfg(shapes_root))


def test_unregistered_type_is_named_with_field_and_suggestion(shapes_root):
    cfg = _cfg(shapes_root)
    cfg.model.panoptic_head.pixel_decoder.type = 'MSDeformAttnPixelDecodr'
    with pytest.raises(ConfigError) as info:
        check_config(cfg)
    msg = str(info.value)
    assert DEMO.split('/')[-1] in msg
    assert "model.panoptic_head.pixel_decoder.type='MSDeformAttnPixelDecodr'" in msg
    assert "'MSDeformAttnPixelDecoder'" in msg  # the close match is suggested


def test_missing_data_root_is_named(shapes_root, tmp_path):
    cfg = _cfg(shapes_root)
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'nowhere')
    with pytest.raises(ConfigError, match=r'train_dataloader\.dataset\.data_root=.*nowhere.* '
                                          'does not exist'):
        check_config(cfg)


@pytest.mark.parametrize('config,things,stuff,field,expected', [
    ('demo/maskdino_r18_shapes-panoptic.py', 4, 1, 'thing_classes/stuff_classes', '4/2'),
    ('demo/maskdino_r18_shapes-semantic.py', 1, 6, 'classes (all stuff)', '0/6'),
    ('demo/maskdino_r18_shapes.py', 4, 2, 'classes (all things)', '4/0'),
])
def test_head_classes_must_match_dataset_metainfo(shapes_root, config, things, stuff, field,
                                                  expected):
    cfg = get_repo_config(config)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = shapes_root
    for name in ('val_evaluator', 'test_evaluator'):  # their files point into data/shapes/
        metrics = cfg[name] if isinstance(cfg[name], list) else [cfg[name]]
        for metric in metrics:
            for key in ('ann_file', 'seg_prefix'):
                if key in metric:
                    metric[key] = metric[key].replace('data/shapes/', shapes_root)
    check_config(cfg)  # as shipped: consistent
    cfg.model.panoptic_head.num_things_classes = things
    cfg.model.panoptic_head.num_stuff_classes = stuff
    with pytest.raises(ConfigError) as info:
        check_config(cfg)
    msg = str(info.value)
    assert f'model.panoptic_head.num_things_classes/num_stuff_classes={things}/{stuff}' in msg
    assert f'train_dataloader.dataset' in msg and f'{expected} from its metainfo {field}' in msg
    assert 'model.panoptic_fusion_head' not in msg  # the fusion head was left consistent


@pytest.mark.parametrize('content,reason', [
    ('[1, 2, 3]', 'top level is list'),
    ('{"images": []}', "missing list field\\(s\\) \\['annotations', 'categories'\\]"),
    ('not json at all', 'not valid JSON'),
])
def test_non_coco_annotation_file_is_named(shapes_root, tmp_path, content, reason):
    bad = tmp_path / 'bad.json'
    bad.write_text(content)
    cfg = _cfg(shapes_root)
    cfg.val_dataloader.dataset.ann_file = str(bad)
    with pytest.raises(ConfigError, match=r'val_dataloader\.dataset\.ann_file=.*bad\.json.*' + reason):
        check_config(cfg)


@pytest.mark.parametrize('tool', ['ours', 'mmdet'])
def test_train_entry_points_fail_before_training(shapes_root, tmp_path, tool):
    """Both our tools/train.py and mmdet's packaged one stop with the message, no checkpoint written."""
    bad = tmp_path / 'instances.json'
    bad.write_text(json.dumps({'info': {}}))
    train_py = 'tools/train.py' if tool == 'ours' else mmdet_tool('train.py')
    work_dir = tmp_path / 'work'
    proc = run_tool([train_py, f'configs/{DEMO}', '--work-dir', str(work_dir), '--cfg-options',
                     f'train_dataloader.dataset.data_root={shapes_root}',
                     f'train_dataloader.dataset.ann_file={bad}'])
    assert proc.returncode != 0
    assert 'ConfigError' in proc.stderr
    assert 'mask2former_r18_shapes.py: train_dataloader.dataset.ann_file=' in proc.stderr
    assert 'is not a COCO annotation file' in proc.stderr
    assert not list(work_dir.glob('**/*.pth'))
