"""Resume works on torch >= 2.6 without disabling weights-only loading."""
import io
import os
import pickle

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
