"""Plugin configs train and test through our tools and through mmdet's packaged tools (mim's)."""
import glob
import json
import os.path as osp
import re

import pytest

from mmdet_maskdino.testing import mmdet_tool, run_tool

MASKDINO = 'configs/demo/maskdino_r18_shapes.py'
MASK2FORMER = 'configs/demo/mask2former_r18_shapes.py'


def _data_options(root: str):
    ann = osp.join(root, 'annotations/instances_val.json')
    return [f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}', f'val_evaluator.ann_file={ann}',
            f'test_evaluator.ann_file={ann}', 'train_dataloader.num_workers=0',
            'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', 'val_dataloader.persistent_workers=False',
            'test_dataloader.persistent_workers=False']


@pytest.mark.parametrize('config,which', [(MASKDINO, 'ours'), (MASKDINO, 'mmdet'),
                                          (MASK2FORMER, 'mmdet')])
def test_train_two_iters_then_test(shapes_root, tmp_path, config, which):
    """Our tools/train.py trains with ``--amp`` (bf16 autocast on this CPU, where MMEngine's
    AmpOptimWrapper refuses to start); mmdet's packaged tool in fp32."""
    train_py = 'tools/train.py' if which == 'ours' else mmdet_tool('train.py')
    test_py = 'tools/test.py' if which == 'ours' else mmdet_tool('test.py')
    work_dir = str(tmp_path / 'work')
    options = _data_options(shapes_root)
    amp = ['--amp'] if which == 'ours' else []
    proc = run_tool([train_py, config, *amp, '--work-dir', work_dir, '--cfg-options',
                     'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
                     'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1', *options])
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert re.search(r'Iter\(train\) \[2/2\].*loss: \d', log), log[-2000:]
    assert ("type='CPUCapableAmpOptimWrapper'" in log) == bool(amp)  # the config the run used
    assert 'coco/segm_mAP' in log
    ckpt = osp.join(work_dir, 'iter_2.pth')
    assert osp.isfile(ckpt)

    proc = run_tool([test_py, config, ckpt, '--work-dir', str(tmp_path / 'test'), '--cfg-options',
                     *options])
    assert proc.returncode == 0, proc.stderr[-3000:]
    scalars = glob.glob(str(tmp_path / 'test' / '*' / '*.json'))
    assert scalars, 'the test run writes its metrics json'
    with open(scalars[0]) as f:
        metrics = json.load(f)
    for key in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert 0.0 <= metrics[key] <= 1.0


def test_inferencer_draws_png(shapes_root, tmp_path):
    """tools/demo/draw_predictions.py: DetInferencer + DetLocalVisualizer write a PNG per image."""
    from PIL import Image
    work_dir = str(tmp_path / 'work')
    proc = run_tool(['tools/train.py', MASKDINO, '--work-dir', work_dir, '--cfg-options',
                     'train_cfg.max_iters=1', 'train_cfg.val_interval=100',
                     'default_hooks.checkpoint.interval=1', *_data_options(shapes_root)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    image = sorted(glob.glob(osp.join(shapes_root, 'val', '*.jpg')))[0]
    out_dir = tmp_path / 'vis'
    proc = run_tool(['tools/demo/draw_predictions.py', MASKDINO, osp.join(work_dir, 'iter_1.pth'),
                     image, '--out-dir', str(out_dir), '--score-thr', '0.0'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    png = out_dir / (osp.splitext(osp.basename(image))[0] + '.png')
    with Image.open(png) as im:
        assert im.format == 'PNG' and im.size == Image.open(image).size
    assert 'instances with score >= 0.0' in proc.stdout


PANOPTIC = 'configs/demo/maskdino_r18_shapes-panoptic.py'
SEMANTIC = 'configs/demo/maskdino_r18_shapes-semantic.py'


def _seg_data_options(root: str, config: str):
    options = [f'{loader}.{key}' for loader in ('train_dataloader', 'val_dataloader',
                                                'test_dataloader')
               for key in ('dataset.data_root=' + root, 'num_workers=0',
                           'persistent_workers=False')]
    if config == PANOPTIC:  # evaluators: [CocoPanopticMetric, CocoMetric, SemSegMetric]
        for evaluator in ('val_evaluator', 'test_evaluator'):
            options += [f'{evaluator}.0.ann_file={root}annotations/panoptic_val.json',
                        f'{evaluator}.0.seg_prefix={root}annotations/panoptic_val/',
                        f'{evaluator}.1.ann_file={root}annotations/instances_val.json']
    return options


@pytest.mark.parametrize('config,keys', [
    (PANOPTIC, ('coco_panoptic/PQ', 'coco_panoptic/PQ_st', 'coco/segm_mAP', 'mIoU')),
    (SEMANTIC, ('mIoU', 'aAcc')),
])
def test_panoptic_and_semantic_configs_train_and_test(shapes_root, tmp_path, config, keys):
    work_dir = str(tmp_path / 'work')
    options = _seg_data_options(shapes_root, config)
    proc = run_tool(['tools/train.py', config, '--work-dir', work_dir, '--cfg-options',
                     'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
                     'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
                     *options])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r'Iter\(train\) \[2/2\].*loss: \d', proc.stdout + proc.stderr)
    proc = run_tool(['tools/test.py', config, osp.join(work_dir, 'iter_2.pth'), '--work-dir',
                     str(tmp_path / 'test'), '--cfg-options', *options])
    assert proc.returncode == 0, proc.stderr[-3000:]
    (scalars, ) = glob.glob(str(tmp_path / 'test' / '*' / '*.json'))
    with open(scalars) as f:
        metrics = json.load(f)
    for key in keys:
        assert 0.0 <= metrics[key] <= 100.0, (key, metrics)
