"""Resume works on torch >= 2.6 without disabling weights-only loading."""
import io
import os
import pickle

import numpy as np
import pytest
import torch

import mmdet_maskdino  # noqa: F401  (registers the allow-list)
from mmdet_maskdino.testing import run_tool
from mmdet_maskdino.utils.checkpoint_compat import history_buffer_method

CFG = 'tests/data/retinanet_r18_shapes.py'


class _Foreign:
    """A class no allow-list knows."""


class _GetattrAbuse:
    """Pickles as ``getattr(HistoryBuffer, '__subclasses__')``: the builtin getattr would allow it."""

    def __reduce__(self):
        from mmengine.logging.history_buffer import HistoryBuffer
        return (getattr, (HistoryBuffer, '__subclasses__'))


def test_getattr_stand_in_refuses_anything_but_history_buffer_methods():
    from mmengine.logging.history_buffer import HistoryBuffer
    assert history_buffer_method(HistoryBuffer, 'mean') is HistoryBuffer.mean
    for owner, name in [(os, 'system'), (HistoryBuffer, '__init__'), (HistoryBuffer, '_set_x')]:
        with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
            history_buffer_method(owner, name)


@pytest.mark.parametrize('obj,reason', [(_Foreign(), 'Unsupported global'),
                                        (_GetattrAbuse(), 'refusing getattr')])
def test_weights_only_still_refuses_foreign_objects(obj, reason):
    buffer = io.BytesIO()
    torch.save({'x': obj}, buffer)
    buffer.seek(0)
    with pytest.raises(pickle.UnpicklingError, match=reason):
        torch.load(buffer)


def _rewriting_buffer():
    """A ``HistoryBuffer`` whose pickled statistics table maps ``'mean'`` to ``max``."""
    from mmengine.logging.history_buffer import HistoryBuffer
    buffer = HistoryBuffer([1.0, 3.0], [1, 1], max_length=10)
    state = dict(max_length=10, _log_history=np.array([1.0, 3.0]),
                 _count_history=np.array([1, 1]), statistics_methods={'mean': HistoryBuffer.max})
    buffer.__getstate__ = lambda: state  # pickle asks the instance first
    return buffer


def test_checkpoint_cannot_rewrite_history_buffer_statistics_for_the_process():
    from mmengine.logging.history_buffer import HistoryBuffer
    HistoryBuffer()  # registers the default statistics
    table = dict(HistoryBuffer._statistics_methods)
    buffer = io.BytesIO()
    torch.save({'message_hub': _rewriting_buffer()}, buffer)
    buffer.seek(0)
    try:
        with pytest.raises(pickle.UnpicklingError, match="statistics 'mean'"):
            torch.load(buffer)
        assert HistoryBuffer._statistics_methods == table
        assert HistoryBuffer([1.0, 3.0], [1, 1]).statistics('mean') == 2.0
    finally:  # a failure must not leak into other tests
        HistoryBuffer._statistics_methods.clear()
        HistoryBuffer._statistics_methods.update(table)


def test_genuine_history_buffer_round_trips_as_a_plain_history_buffer():
    from mmengine.logging.history_buffer import HistoryBuffer
    original = HistoryBuffer([1.0, 2.0, 6.0], [1, 1, 1], max_length=7)
    buffer = io.BytesIO()
    torch.save({'log_scalars': {'loss': original}}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer)['log_scalars']['loss']
    assert type(loaded) is HistoryBuffer and loaded.max_length == 7
    assert loaded.mean() == 3.0 and loaded.statistics('max') == 6.0
    np.testing.assert_array_equal(loaded.data[0], original.data[0])


def _train(work_dir, max_iters, root, resume=False):
    args = [
        'tools/train.py', CFG, '--work-dir', str(work_dir), '--cfg-options',
        f'train_cfg.max_iters={max_iters}', f'train_dataloader.dataset.data_root={root}'
    ]
    if resume:
        args.insert(2, '--resume')
    proc = run_tool(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_resume_equals_uninterrupted_training(shapes_root, tmp_path):
    _train(tmp_path / 'straight', 4, shapes_root)
    _train(tmp_path / 'resumed', 2, shapes_root)
    log = _train(tmp_path / 'resumed', 4, shapes_root, resume=True)
    assert 'resumed epoch: 0, iter: 2' in log

    a = torch.load(tmp_path / 'straight' / 'iter_4.pth', map_location='cpu')  # weights_only=True
    b = torch.load(tmp_path / 'resumed' / 'iter_4.pth', map_location='cpu')
    assert a['meta']['iter'] == b['meta']['iter'] == 4
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key, value in a['state_dict'].items():
        torch.testing.assert_close(b['state_dict'][key], value, rtol=1e-5, atol=1e-6, msg=key)
    state_a, state_b = a['optimizer']['state'], b['optimizer']['state']
    assert state_a.keys() == state_b.keys() and len(state_a) > 0
    for idx in state_a:
        assert int(state_a[idx]['step']) == int(state_b[idx]['step']) == 4
        for name in ('exp_avg', 'exp_avg_sq'):
            torch.testing.assert_close(state_b[idx][name], state_a[idx][name], rtol=1e-5,
                                       atol=1e-7)
    # and the weights really moved between iteration 2 and 4
    mid = torch.load(tmp_path / 'resumed' / 'iter_2.pth', map_location='cpu')['state_dict']
    assert any(not torch.equal(mid[k], v) for k, v in b['state_dict'].items())
