"""Checkpoints survive a kill, and kill -9 + --resume ends with the weights of an uninterrupted run."""
import os
import os.path as osp
import signal

import pytest
import torch

from mmdet_maskdino.engine import find_resumable_checkpoint
from mmdet_maskdino.testing import REPO_ROOT, run_tool

ITERS, INTERVAL = 6, 2


def _config(tmp_path, shapes_root: str, hooks: str = '') -> str:
    """The demo Mask DINO (DN noise, random points, flips), small and fast; optional fault hooks.

    No loader workers: a killed main process would leave them holding the output pipes."""
    path = tmp_path / f'cfg_{len(hooks)}.py'
    path.write_text(f'''_base_ = {osp.join(REPO_ROOT, 'configs/demo/maskdino_r18_shapes.py')!r}
custom_imports = dict(imports=['mmdet_maskdino', 'mmdet_maskdino.testing.faults'],
                      allow_failed_imports=False)
custom_hooks = [{hooks}]
data_root = {shapes_root!r}
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_iters={ITERS}, val_interval=3)
default_hooks = dict(checkpoint=dict(interval={INTERVAL}, max_keep_ckpts=1),
                     logger=dict(interval=1))
''')
    return str(path)


def _train(config: str, work_dir, resume: bool = False):
    args = ['tools/train.py', config, '--work-dir', str(work_dir)] + (['--resume'] if resume else [])
    return run_tool(args)


def _final_weights(work_dir) -> dict:
    return torch.load(osp.join(work_dir, f'iter_{ITERS}.pth'), map_location='cpu')


def _assert_same_run(a: dict, b: dict) -> None:
    assert a['meta']['iter'] == b['meta']['iter'] == ITERS
    for key, value in a['state_dict'].items():
        torch.testing.assert_close(b['state_dict'][key], value, rtol=0, atol=0, msg=key)
    for idx, state in a['optimizer']['state'].items():
        torch.testing.assert_close(b['optimizer']['state'][idx]['exp_avg'], state['exp_avg'],
                                   rtol=0, atol=0)


@pytest.fixture(scope='module')
def uninterrupted(shapes_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('straight')
    proc = _train(_config(tmp, shapes_root), tmp / 'work')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p for p in os.listdir(tmp / 'work') if p.endswith('.pth')) == [f'iter_{ITERS}.pth']
    return _final_weights(tmp / 'work')


def test_kill_mid_training_then_resume_equals_uninterrupted(uninterrupted, shapes_root, tmp_path):
    work = tmp_path / 'work'
    proc = _train(_config(tmp_path, shapes_root, "dict(type='KillAtIterHook', at_iter=3)"), work)
    assert proc.returncode == -signal.SIGKILL
    assert sorted(os.listdir(work)).count('iter_2.pth') == 1 and not (work / 'iter_4.pth').exists()
    proc = _train(_config(tmp_path, shapes_root), work, resume=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'resumed epoch: 0, iter: 2' in proc.stdout + proc.stderr
    _assert_same_run(uninterrupted, _final_weights(work))


def test_kill_during_checkpoint_write_keeps_the_previous_one(uninterrupted, shapes_root, tmp_path):
    work = tmp_path / 'work'
    proc = _train(
        _config(tmp_path, shapes_root, "dict(type='KillDuringCheckpointWriteHook', at_iter=4)"),
        work)
    assert proc.returncode == -signal.SIGKILL
    files = sorted(os.listdir(work))
    # MMEngine's hook deletes iter_2.pth before saving iter_4.pth: nothing would be left
    assert 'iter_2.pth' in files and 'iter_4.pth' not in files, files
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_2.pth')
    proc = _train(_config(tmp_path, shapes_root), work, resume=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'resumed epoch: 0, iter: 2' in proc.stdout + proc.stderr
    _assert_same_run(uninterrupted, _final_weights(work))
    assert sorted(p for p in os.listdir(work) if p.endswith('.pth')) == [f'iter_{ITERS}.pth']


def test_resume_skips_truncated_checkpoints(tmp_path):
    older, newer = tmp_path / 'iter_2.pth', tmp_path / 'iter_4.pth'
    torch.save({'w': torch.ones(3)}, older)
    torch.save({'w': torch.zeros(1000)}, newer)
    newer.write_bytes(newer.read_bytes()[:300])  # a kill during a plain (non-atomic) write
    (tmp_path / 'last_checkpoint').write_text(str(newer))
    path, skipped = find_resumable_checkpoint(str(tmp_path))
    assert path == str(older)
    assert len(skipped) == 1 and skipped[0].startswith(f'{newer}: ')
    older.write_bytes(b'not a checkpoint')
    assert find_resumable_checkpoint(str(tmp_path))[0] is None
