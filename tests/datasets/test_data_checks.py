"""Bad annotations and images are found when the dataset is built, named by json, image and annotation
id; data_check='skip' drops them and logs the count."""
import json
import logging
import os
import re
import shutil

import pytest
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

from mmdet.registry import DATASETS
from mmdet_maskdino.datasets import DataError
from mmdet_maskdino.datasets.synthetic_shapes import THING_CLASSES

ANN = 'annotations/instances_train.json'


@pytest.fixture
def root(shapes_root, tmp_path):
    """A private copy of the generated shapes data (tests plant defects in it)."""
    dst = tmp_path / 'shapes'
    shutil.copytree(shapes_root, dst)
    return dst


def _build(root, data_check='error', classes=THING_CLASSES):
    init_default_scope('mmdet')
    return DATASETS.build(dict(type='CheckedCocoDataset', data_root=str(root) + '/', ann_file=ANN,
                               data_prefix=dict(img='train/'), metainfo=dict(classes=classes),
                               filter_cfg=None, pipeline=[], data_check=data_check))


def _edit(root, change, ann_file=ANN):
    """Apply ``change`` to the json in place; return what it returns."""
    path = root / ann_file
    coco = json.loads(path.read_text())
    where = change(coco)
    path.write_text(json.dumps(coco))
    return where


def _first_ann(coco):
    return coco['annotations'][0]


def unknown_category(coco):
    ann = _first_ann(coco)
    ann['category_id'] = 99
    return ann, 'category_id 99 is not a category of the json'


def negative_width(coco):
    ann = _first_ann(coco)
    ann['bbox'][2] = -3.0
    return ann, 'degenerate bbox'


def two_point_polygon(coco):
    ann = _first_ann(coco)  # (the generated masks are RLE; a valid polygon and a 2-point one)
    ann['segmentation'] = [[1.0, 1.0, 9.0, 1.0, 9.0, 9.0], [1.0, 1.0, 5.0, 5.0]]
    return ann, 'degenerate segmentation polygon with 4 coordinates'


def no_segmentation(coco):
    ann = _first_ann(coco)
    del ann['segmentation']
    return ann, "annotation without ['segmentation']"


def rle_of_wrong_size(coco):
    ann = _first_ann(coco)
    ann['segmentation'] = {'size': [10, 10], 'counts': 'abc'}
    return ann, 'segmentation RLE size [10, 10] differs from the image size'


DEFECTS = [unknown_category, negative_width, two_point_polygon, no_segmentation, rle_of_wrong_size]


@pytest.mark.parametrize('defect', DEFECTS, ids=lambda f: f.__name__)
def test_annotation_defect_is_named_or_skipped_and_counted(root, defect):
    clean = len(_build(root))
    ann, phrase = _edit(root, defect)
    with pytest.raises(DataError) as err:
        _build(root)
    message = str(err.value)
    assert f'{root}/{ANN}' in message and f"image {ann['image_id']}" in message
    assert f"annotation {ann['id']}" in message and phrase in message
    assert "data_check='skip'" in message

    logger, records = MMLogger.get_current_instance(), _Collect()
    logger.addHandler(records)
    try:
        dataset = _build(root, data_check='skip')
    finally:
        logger.removeHandler(records)
    assert len(dataset) == clean  # the image stays, without that annotation
    image = next(d for d in _infos(dataset) if d['img_id'] == ann['image_id'])
    kept = _edit(root, lambda c: [a for a in c['annotations'] if a['image_id'] == ann['image_id']])
    assert len(image['instances']) == len(kept) - 1
    log = '\n'.join(records.messages)
    assert 'dropped 1 annotation and 0 images' in log and f"annotation {ann['id']}" in log


class _Collect(logging.Handler):
    """Keeps the messages logged while attached."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _infos(dataset):
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def _first_image(coco):
    return coco['images'][0]


@pytest.mark.parametrize('defect,phrase', [
    ('size', 'the json says 70x64 (width x height), the file'),
    ('missing', 'does not exist'),
    ('corrupt', 'cannot be read'),
])
def test_image_defect_is_named_or_the_image_skipped(root, defect, phrase):
    clean = len(_build(root))
    img = _edit(root, _first_image)
    if defect == 'size':
        _edit(root, lambda c: c['images'][0].update(width=70))
    elif defect == 'missing':
        os.remove(root / 'train' / img['file_name'])
    else:
        (root / 'train' / img['file_name']).write_bytes(b'\xff\xd8 not really a jpeg')
    with pytest.raises(DataError,
                       match=rf"image {img['id']} \({img['file_name']}\): .*{re.escape(phrase)}"):
        _build(root)
    dataset = _build(root, data_check='skip')
    assert len(dataset) == clean - 1
    assert img['id'] not in {d['img_id'] for d in _infos(dataset)}


def test_class_name_typo_is_an_error_even_with_skip(root):
    classes = ('circle', 'sqare', 'triangle', 'cross')
    for policy in ('error', 'skip'):
        with pytest.raises(DataError, match=r"'sqare', which is not a category name of the json "
                           r"\(did you mean 'square'\?\)"):
            _build(root, data_check=policy, classes=classes)


def test_clean_data_passes_with_the_same_content_as_cocodataset(root):
    init_default_scope('mmdet')
    plain = DATASETS.build(dict(type='CocoDataset', data_root=str(root) + '/', ann_file=ANN,
                                data_prefix=dict(img='train/'),
                                metainfo=dict(classes=THING_CLASSES), filter_cfg=None,
                                pipeline=[]))
    checked = _build(root)
    assert _infos(checked) == _infos(plain) and len(checked) > 0


COCO128 = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'shared', 'data', 'coco128')


@pytest.mark.skipif(not os.path.isdir(COCO128), reason=f'{COCO128} not present (needs ../shared)')
def test_real_coco_images_pass_the_checks():
    init_default_scope('mmdet')
    dataset = DATASETS.build(dict(type='CheckedCocoDataset', data_root=COCO128 + '/',
                                  ann_file='annotations/instances_train2017.json',
                                  data_prefix=dict(img='train2017/'), filter_cfg=None,
                                  pipeline=[]))
    with open(os.path.join(COCO128, 'annotations/instances_train2017.json')) as f:
        assert len(dataset) == len(json.load(f)['images']) > 0


def _semantic(root, data_check='error'):
    from mmdet_maskdino.datasets.synthetic_shapes import STUFF_CLASSES
    init_default_scope('mmdet')
    return DATASETS.build(dict(type='CheckedADE20KSegDataset', data_root=str(root) + '/',
                               metainfo=dict(classes=THING_CLASSES + STUFF_CLASSES),
                               data_prefix=dict(img_path='train',
                                                seg_map_path='annotations/semantic_train'),
                               pipeline=[], data_check=data_check))


def test_semantic_labels_out_of_range_are_named_or_the_image_skipped(root):
    import numpy as np
    from PIL import Image
    clean = len(_semantic(root))
    png = sorted((root / 'annotations' / 'semantic_train').glob('*.png'))[0]
    seg = np.array(Image.open(png))
    seg[0, :3] = [9, 6, 255]  # 6 classes: 9 and 6 are out of range, 255 is void
    Image.fromarray(seg).save(png)
    with pytest.raises(DataError, match=rf'{re.escape(str(png))} has label\(s\) \[6, 9\] outside '
                       r'\[0, 6\) and not the ignore index 255'):
        _semantic(root)
    dataset = _semantic(root, data_check='skip')
    assert len(dataset) == clean - 1
    assert png.stem not in {os.path.basename(d['img_path']).split('.')[0] for d in _infos(dataset)}


PAN = 'annotations/panoptic_train.json'


def _panoptic(root, data_check='error', dataset='CheckedCocoPanopticDataset'):
    from mmdet_maskdino.datasets.synthetic_shapes import metainfo
    init_default_scope('mmdet')
    return DATASETS.build(dict(type=dataset, data_root=str(root) + '/', ann_file=PAN,
                               data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
                               metainfo=metainfo(with_stuff=True), filter_cfg=None, pipeline=[],
                               **({} if dataset == 'CocoPanopticDataset' else
                                  dict(data_check=data_check))))


def test_panoptic_checks_name_segments_and_pngs(root):
    checked = _infos(_panoptic(root))
    # mmdet's data infos, plus each segment's iscrowd (read by LoadPanopticSegments)
    crowd = [[s.pop('iscrowd') for s in info['segments_info']] for info in checked]
    assert checked == _infos(_panoptic(root, dataset='CocoPanopticDataset'))
    assert crowd and not any(any(c) for c in crowd)  # the generator makes no crowd segment

    def first_segment_crowd(coco):
        coco['annotations'][0]['segments_info'][0]['iscrowd'] = 1
        return coco['annotations'][0]['image_id']
    img_id = _edit(root, first_segment_crowd, PAN)
    info = next(i for i in _infos(_panoptic(root)) if i['img_id'] == img_id)
    assert [s['iscrowd'] for s in info['segments_info']][:2] == [True, False]
    _edit(root, lambda coco: coco['annotations'][0]['segments_info'][0].update(iscrowd=0), PAN)

    def unknown_category(coco):
        ann = coco['annotations'][0]
        ann['segments_info'][-1]['category_id'] = 42
        return ann

    ann = _edit(root, unknown_category, PAN)
    seg_id = ann['segments_info'][-1]['id']
    with pytest.raises(DataError, match=rf"image {ann['image_id']} \(.*\), segment {seg_id}: "
                       r'category_id 42 is not a category'):
        _panoptic(root)
    dataset = _panoptic(root, data_check='skip')  # mmdet's own class stops with a KeyError
    info = next(d for d in _infos(dataset) if d['img_id'] == ann['image_id'])
    assert [s['id'] for s in info['segments_info']] == [s['id'] for s in ann['segments_info'][:-1]]

    os.remove(root / 'annotations' / 'panoptic_train' / ann['file_name'])
    with pytest.raises(DataError, match=rf"image {ann['image_id']} .*{ann['file_name']} does not "
                       r'exist'):
        _panoptic(root)
