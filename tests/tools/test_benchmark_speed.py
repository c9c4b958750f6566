"""benchmark_speed.py's bf16 rows: spec suffix, row selection, and a worker that predicts under
bf16 autocast."""
import argparse
import importlib.util
import os.path as osp

import pytest

from mmdet_maskdino.testing import REPO_ROOT


@pytest.fixture(scope='module')
def bench():
    path = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'benchmark_speed.py')
    spec = importlib.util.spec_from_file_location('benchmark_speed', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bf16_rows_and_lean_selection(bench):
    assert bench.split_autocast('a.py|x=1#bf16') == ('a.py|x=1', True)
    assert bench.split_autocast('a.py@m.onnx') == ('a.py@m.onnx', False)
    models = dict(bench.MODELS_TO_COMPARE)
    rows = bench.with_rows(models, argparse.Namespace(bf16=True, lean=False))
    names = list(rows)
    assert names[names.index(bench.RELEASED) + 1] == bench.BF16_ROW
    assert rows[bench.BF16_ROW] == models[bench.RELEASED] + '#bf16' and len(rows) == 4
    lean = bench.with_rows(models, argparse.Namespace(bf16=False, lean=True))
    assert list(lean) == [bench.RELEASED, bench.REFERENCE]
    onnx_rows = {bench.RELEASED: 'a', bench.ONNX_ROW: 'a@f', bench.INT8_ROW: 'a@g', 'other': 'b'}
    assert list(bench.with_rows(onnx_rows, argparse.Namespace(bf16=False, lean=True))) == [
        bench.RELEASED, bench.ONNX_ROW, bench.INT8_ROW]


def test_variant_rows_add_options_to_the_released_model(bench):
    models = {bench.RELEASED: 'a.py|x=1', bench.REFERENCE: 'b.py'}
    rows = bench.with_variants(models, ['draws:m.y=False', 'two:m.z=2,m.w=3'])
    assert list(rows) == [bench.RELEASED, 'Mask DINO R50, draws', 'Mask DINO R50, two',
                          bench.REFERENCE]
    assert rows['Mask DINO R50, draws'] == 'a.py|x=1,m.y=False'
    assert rows['Mask DINO R50, two'] == 'a.py|x=1,m.z=2,m.w=3'
    assert bench.with_variants({bench.RELEASED: 'a.py'}, ['v:k=1'])['Mask DINO R50, v'] == \
        'a.py|k=1'
    with pytest.raises(SystemExit, match='NAME:KEY=VALUE'):
        bench.with_variants(models, ['no options'])


@pytest.mark.slow  # a worker process building the demo model (about 10 s)
def test_worker_predicts_under_bf16(bench):
    """A real worker process (the demo config) answers timed bf16 steps and its peak memory."""
    out = bench.time_inference({'demo bf16': 'configs/demo/maskdino_r18_shapes.py#bf16'},
                               (128, 128), 'cpu', warmup=1, repeats=2)
    result = out['demo bf16']
    assert len(result['times']) == 2 and all(t > 0 for t in result['times'])
    assert result['peak_mib'] > 0
