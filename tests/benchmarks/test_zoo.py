"""The model-zoo comparison: protocol rewriting, curves from MMEngine scalars, state, table; and the
tool end to end on a tiny budget, interrupted and resumed."""
import json
import math
import os.path as osp

import pytest

from mmdet_maskdino.benchmarks.zoo import (COLUMNS, ZooSpec, ZooState, markdown_table,
                                           prepare_config, read_curve)
from mmdet_maskdino.testing import REPO_ROOT, run_tool


def test_prepare_config_applies_one_protocol(shapes_root):
    spec = ZooSpec(data_root=shapes_root, image_size=96, iters=30, val_interval=10, seed=7)
    md = prepare_config(osp.join(REPO_ROOT, 'configs/demo/maskdino_r18_shapes.py'), spec)
    rcnn = prepare_config(osp.join(REPO_ROOT, 'configs/zoo/mask-rcnn_r18_fpn_shapes.py'), spec)
    dino = prepare_config(osp.join(REPO_ROOT, 'configs/zoo/dino-4scale_r18_shapes.py'), spec)
    for cfg in (md, rcnn, dino):
        assert cfg.train_dataloader.dataset.pipeline == md.train_dataloader.dataset.pipeline or \
            cfg is dino  # DINO has no masks: the same pipeline without mask loading
        assert cfg.train_dataloader.dataset.data_root == osp.abspath(shapes_root) + '/'
        assert cfg.train_cfg.max_iters == 30 and cfg.train_cfg.val_interval == 10
        assert cfg.randomness.seed == 7
        assert cfg.param_scheduler[1].milestones == [25]
        assert [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'Resize'][0].scale \
            == (96, 96)
    assert md.model.data_preprocessor.batch_augments[0].size == (96, 96)
    assert md.val_evaluator.metric == ['bbox', 'segm'] and dino.val_evaluator.metric == ['bbox']
    assert md.optim_wrapper.optimizer.type == 'AdamW' and rcnn.optim_wrapper.optimizer.type == 'SGD'
    # a panoptic config is compared on the panoptic annotations of the same images, with PQ too
    pan = prepare_config(osp.join(REPO_ROOT, 'configs/demo/maskdino_r18_shapes-panoptic.py'), spec)
    assert pan.train_dataloader.dataset.type == 'CocoPanopticDataset'
    assert pan.train_dataloader.dataset.data_prefix.img == 'train/'
    assert [m.type for m in pan.val_evaluator] == ['CocoPanopticMetric', 'CocoMetric']
    assert pan.model.test_cfg.panoptic_on and not pan.model.test_cfg.semantic_on


def test_read_curve_places_validations_at_their_iteration(tmp_path):
    """Validation records carry step 0; a run resumed at 200 after a kill during the 200
    evaluation has no 200 point and continues at 300."""
    run1 = tmp_path / '20260101_000000' / 'vis_data'
    run2 = tmp_path / '20260101_010000' / 'vis_data'
    for d in (run1, run2):
        d.mkdir(parents=True)
    train = lambda i: json.dumps(dict(loss=1.0, iter=i, step=i))  # noqa: E731
    val = lambda ap: json.dumps({'coco/bbox_mAP': ap, 'coco/segm_mAP': ap / 2, 'step': 0})  # noqa
    (run1 / 'scalars.json').write_text('\n'.join([train(50), train(100), val(0.1), train(150),
                                                  train(200)]) + '\n')
    (run2 / 'scalars.json').write_text('\n'.join([train(250), train(300), val(0.3)]) + '\n')
    curve = read_curve(str(tmp_path), val_interval=100, iters=300)
    assert [(p['iter'], p['box AP'], p['mask AP'], p['PQ']) for p in curve] == \
        [(100, 0.1, 0.05, None), (300, 0.3, 0.15, None)]
    # training logged less often than it validates (logger interval 20, validation every 2)
    sparse = tmp_path / 'sparse'
    (sparse / '20260101_000000' / 'vis_data').mkdir(parents=True)
    (sparse / '20260101_000000' / 'vis_data' / 'scalars.json').write_text(
        '\n'.join([val(0.1), val(0.2)]) + '\n')
    assert [(p['iter'], p['box AP']) for p in read_curve(str(sparse), 2, 4)] == \
        [(2, 0.1), (4, 0.2)]
    # a rerun (not a resume) reads its own run only; other scalar keys on request
    assert read_curve(str(tmp_path), 100, 300, keys={'segm': 'coco/segm_mAP'},
                      last_run_only=True) == [{'iter': 300, 'segm': 0.15}]


def test_state_refuses_another_protocol(tmp_path, shapes_root):
    state = ZooState.load(str(tmp_path), ZooSpec(data_root=shapes_root, iters=10))
    state.models['A'] = dict(config='a.py', backbone='ResNet-18', curve=[
        {'iter': 10, 'box AP': 0.5, 'mask AP': 0.25, 'PQ': None}],
        measure=dict(params_m=1.0, gflops=None, latency_ms=3.0, train_step_s=0.5, peak_mib=100.0))
    state.save()
    assert ZooState.load(str(tmp_path), ZooSpec(data_root=shapes_root, iters=10)).models == \
        state.models
    with pytest.raises(ValueError, match='another protocol'):
        ZooState.load(str(tmp_path), ZooSpec(data_root=shapes_root, iters=20))
    lines = markdown_table(state).splitlines()
    assert lines[0] == '| ' + ' | '.join(COLUMNS) + ' |'
    assert lines[2].split(' | ')[4:] == ['n/a', '0.500', '0.250', 'n/a', '3.0', '0.500', '100 |']


def _tool(work_dir, shapes_root, models):
    return run_tool(['tools/analysis_tools/zoo_compare.py', '--models', *models, '--data-root',
                     shapes_root, '--iters', '2', '--val-interval', '1', '--warmup-iters', '1',
                     '--warmup', '1', '--repeats', '5', '--train-steps', '1', '--work-dir',
                     work_dir], timeout=900)


def test_tool_two_models_interrupted_then_resumed(shapes_root, tmp_path):
    work_dir = str(tmp_path / 'zoo')
    good = ['Mask DINO=configs/demo/maskdino_r18_shapes.py',
            'DINO=configs/zoo/dino-4scale_r18_shapes.py']
    # first attempt: the second model's checkpoint does not exist -> the tool stops there
    proc = _tool(work_dir, shapes_root, [good[0], good[1] + '=/nonexistent/ckpt.pth'])
    assert proc.returncode != 0 and 'failed' in proc.stderr
    with open(osp.join(work_dir, 'state.json')) as f:
        first = json.load(f)['models']
    assert set(first) == {'Mask DINO'} and 'measure' in first['Mask DINO']
    log = osp.join(work_dir, 'mask-dino', 'run.log')
    mtime = osp.getmtime(log)

    proc = _tool(work_dir, shapes_root, good)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert osp.getmtime(log) == mtime  # Mask DINO was neither retrained nor re-evaluated
    with open(osp.join(work_dir, 'state.json')) as f:
        models = json.load(f)['models']
    assert models['Mask DINO']['measure'] == first['Mask DINO']['measure']
    assert [p['iter'] for p in models['DINO']['curve']] == [1, 2]
    table = open(osp.join(work_dir, 'table.md')).read().splitlines()
    header = table[2]
    assert header == '| ' + ' | '.join(COLUMNS) + ' |'
    rows = {r.split(' | ')[0].lstrip('| '): r.strip('| ').split(' | ') for r in table[4:]}
    assert set(rows) == {'Mask DINO', 'DINO'}
    for name, row in rows.items():
        assert len(row) == len(COLUMNS) and row[2] == 'ResNet-18'
        values = dict(zip(COLUMNS, row))
        for col in ('params (M)', 'GFLOPs', 'box AP', 'latency (ms)', 'train step (s)',
                    'peak mem (MiB)'):
            assert math.isfinite(float(values[col])) and float(values[col]) >= 0, (name, col)
    assert float(rows['Mask DINO'][COLUMNS.index('mask AP')]) >= 0
    assert rows['DINO'][COLUMNS.index('mask AP')] == 'n/a'  # a box-only model
    for png in ('ap_vs_iter.png', 'cost.png'):
        with open(osp.join(work_dir, png), 'rb') as f:
            assert f.read(8) == b'\x89PNG\r\n\x1a\n'
