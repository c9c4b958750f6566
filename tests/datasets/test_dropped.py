"""DropTrackingMixin: a dropped sample is replaced and recorded on its replacement, or refused
(``on_dropped='error'``, test mode) with the image and the transform named; the shipped configs'
val / test splits are checked datasets, so a bad val annotation or a missing val image is an error
at build time."""
import json
import os
import shutil

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmdet.registry import DATASETS
from mmdet_maskdino.datasets import DROPPED_KEY, DataError, dropped_records
from mmdet_maskdino.datasets.synthetic_shapes import THING_CLASSES
from mmdet_maskdino.testing import REPO_ROOT
from mmdet_maskdino.testing.dropped import drop_log_lines

PIPELINE = [dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(type='DropImages', names=[]),
            dict(type='PackDetInputs')]


def _dataset(root, names, log_file=None, **kwargs):
    init_default_scope('mmdet')
    pipeline = [dict(t) for t in PIPELINE]
    pipeline[2] = dict(type='DropImages', names=names, log_file=log_file)
    return DATASETS.build(dict(type='CheckedCocoDataset', data_root=root,
                               metainfo=dict(classes=THING_CLASSES),
                               ann_file='annotations/instances_train.json',
                               data_prefix=dict(img='train/'), pipeline=pipeline, **kwargs))


def _file_names(root, split='train'):
    with open(os.path.join(root, 'annotations', f'instances_{split}.json')) as f:
        return [img['file_name'] for img in json.load(f)['images']]


def test_a_dropped_image_is_replaced_and_recorded_on_its_replacement(shapes_root, tmp_path):
    names = _file_names(shapes_root)
    log_file = str(tmp_path / 'drops.txt')
    dataset = _dataset(shapes_root, [names[3]], log_file)
    index = [os.path.basename(dataset.get_data_info(i)['img_path']) for i in
             range(len(dataset))].index(names[3])
    kept = dataset[index + 1]
    assert DROPPED_KEY not in kept['data_samples'].metainfo and not drop_log_lines(log_file)
    data = dataset[index]
    records = dropped_records(data['data_samples'])
    assert len(records) == len(drop_log_lines(log_file)) >= 1  # the replacement may drop too
    assert all(os.path.basename(r['img_path']) == names[3] and r['transform'] == 'DropImages'
               for r in records)
    assert os.path.basename(data['data_samples'].img_path) != names[3]


def test_error_mode_and_test_mode_name_the_image_and_the_transform(shapes_root):
    name = _file_names(shapes_root)[0]
    dataset = _dataset(shapes_root, [name], on_dropped='error')
    index = [os.path.basename(dataset.get_data_info(i)['img_path']) for i in
             range(len(dataset))].index(name)
    with pytest.raises(DataError, match=rf"{name}.*DropImages returned None.*on_dropped='error'"):
        dataset[index]
    test_mode = _dataset(shapes_root, [name], test_mode=True)
    with pytest.raises(DataError, match=rf'test-mode pipeline dropped .*{name}.*DropImages'):
        test_mode[index]
    with pytest.raises(ValueError, match='on_dropped'):
        _dataset(shapes_root, [], on_dropped='skip')


def test_every_drop_in_a_row_is_an_error_naming_the_last(shapes_root):
    dataset = _dataset(shapes_root, _file_names(shapes_root), max_refetch=3)
    with pytest.raises(DataError, match=r'dropped 4 images in a row.*DropImages'):
        dataset[0]


SHIPPED = ['configs/maskdino_r50.py', 'configs/maskdino/maskdino_r50_8xb2-lsj-50e_coco.py',
           'configs/maskdino/maskdino_r50_8xb2-lsj-50e_coco-panoptic.py',
           'configs/maskdino/maskdino_r50_8xb2-160k_ade20k-semantic.py',
           'configs/demo/maskdino_r18_shapes.py', 'configs/demo/maskdino_r18_shapes-panoptic.py',
           'configs/demo/maskdino_r18_shapes-semantic.py']


@pytest.mark.parametrize('config', SHIPPED)
def test_shipped_configs_check_every_split(config):
    cfg = Config.fromfile(os.path.join(REPO_ROOT, config))
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset_type = cfg[split].dataset.type
        assert DATASETS.get(dataset_type).__name__.startswith('Checked'), (split, dataset_type)


def _demo_val(root):
    cfg = Config.fromfile(os.path.join(REPO_ROOT, 'configs/demo/maskdino_r18_shapes.py'))
    init_default_scope('mmdet')
    return DATASETS.build(dict(cfg.val_dataloader.dataset, data_root=str(root) + '/'))


def test_a_bad_val_annotation_or_missing_val_image_is_an_error_at_build(shapes_root, tmp_path):
    root = tmp_path / 'shapes'
    shutil.copytree(shapes_root, root)
    assert len(_demo_val(root)) == len(_file_names(root, 'val'))
    path = root / 'annotations' / 'instances_val.json'
    coco = json.loads(path.read_text())
    ann = coco['annotations'][0]
    ann['bbox'][2] = -3.0
    path.write_text(json.dumps(coco))
    image = next(i for i in coco['images'] if i['id'] == ann['image_id'])
    with pytest.raises(DataError, match=rf"instances_val.json.*{image['file_name']}.*"
                                        rf"annotation {ann['id']}"):
        _demo_val(root)
    ann['bbox'][2] = 5.0
    path.write_text(json.dumps(coco))
    missing = coco['images'][-1]['file_name']
    os.remove(root / 'val' / missing)
    with pytest.raises(DataError, match=missing):
        _demo_val(root)


COCO128 = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'shared', 'data', 'coco128')


@pytest.mark.skipif(not os.path.isdir(COCO128), reason=f'{COCO128} not present (needs ../shared)')
def test_checked_val_split_of_the_r50_config_passes_on_real_coco_images():
    """The R50 config's val split (checked, test mode) on coco128's real images: every image kept.
    (Its cost, about a second at most, is measured in the README, not asserted here.)"""
    cfg = Config.fromfile(os.path.join(REPO_ROOT, 'configs/maskdino_r50.py'))
    init_default_scope('mmdet')
    spec = dict(cfg.val_dataloader.dataset, data_root=COCO128 + '/',
                ann_file='annotations/instances_train2017.json',
                data_prefix=dict(img='train2017/'))
    dataset = DATASETS.build(spec)
    dataset.full_init()
    assert DATASETS.get(spec['type']).__name__ == 'CheckedCocoDataset' and dataset.test_mode
    with open(os.path.join(COCO128, 'annotations/instances_train2017.json')) as f:
        assert len(dataset) == len(json.load(f)['images']) > 0
