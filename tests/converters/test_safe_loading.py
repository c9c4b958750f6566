"""Reading upstream checkpoints executes nothing: hostile pickles are refused, naming file and global."""
import collections
import io
import os
import pickle

import numpy as np
import pytest
import torch

from mmdet_maskdino.converters import (ArrayUnpickler, UnsafeCheckpointError,
                                       load_upstream_checkpoint)
from mmdet_maskdino.testing import run_tool

TOOL = 'tools/model_converters/maskdino_upstream_to_mmdet.py'


class _Payload:
    """Unpickling this creates ``marker`` (what an attacker's ``os.system`` would do)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker, ))


def _state_dict():
    return collections.OrderedDict(
        (f'sem_seg_head.predictor.class_embed.{k}', np.arange(6, dtype=np.float32).reshape(2, 3))
        for k in ('weight', 'bias'))


@pytest.mark.parametrize('protocol', [2, 4])
def test_detectron2_pkl_with_arrays_loads(tmp_path, protocol):
    path = tmp_path / 'model_final.pkl'
    sd = _state_dict()
    sd['scalar'] = np.float64(0.5)
    with open(path, 'wb') as f:
        pickle.dump({'model': sd, '__author__': 'Detectron2 Model Zoo'}, f, protocol=protocol)
    ckpt = load_upstream_checkpoint(str(path))
    assert ckpt['__author__'] == 'Detectron2 Model Zoo'
    for key, value in sd.items():
        np.testing.assert_array_equal(ckpt['model'][key], value)
        assert ckpt['model'][key].dtype == value.dtype


@pytest.mark.parametrize('suffix', ['.pkl', '.pth'])
def test_hostile_checkpoint_is_refused_before_anything_runs(tmp_path, suffix):
    marker = tmp_path / 'payload_ran'
    path = tmp_path / f'model{suffix}'
    weights = np.zeros(2) if suffix == '.pkl' else torch.zeros(2)
    obj = {'model': {'w': weights}, 'trainer': _Payload(str(marker))}
    if suffix == '.pkl':
        with open(path, 'wb') as f:
            pickle.dump(obj, f, protocol=2)
    else:
        torch.save(obj, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_upstream_checkpoint(str(path))
    assert str(path) in str(err.value) and 'mkdir' in str(err.value)
    assert '--unsafe-load' in str(err.value)
    assert not marker.exists()
    # the user's explicit opt-in for a trusted file really unpickles it (and so runs the payload)
    load_upstream_checkpoint(str(path), unsafe=True)
    assert marker.exists()


def test_array_unpickler_refuses_codecs_other_than_latin1():
    data = (b'\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R.')
    with pytest.raises(UnsafeCheckpointError, match='rot13'):
        ArrayUnpickler(io.BytesIO(data), 'x.pkl').load()


def test_converter_tool_refuses_hostile_file_and_says_how_to_override(tmp_path):
    marker = tmp_path / 'payload_ran'
    path = tmp_path / 'model_final.pkl'
    with open(path, 'wb') as f:
        pickle.dump({'model': _state_dict(), 'x': _Payload(str(marker))}, f, protocol=2)
    proc = run_tool([TOOL, str(path), str(tmp_path / 'out.pth')])
    assert proc.returncode != 0
    assert f'{path}: refusing to load the global posix.mkdir' in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert not marker.exists() and not (tmp_path / 'out.pth').exists()
