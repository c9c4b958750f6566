"""DroppedSamplesHook in real MMEngine runs: every drop the pipeline made (recorded by the dropping
transform itself, in whatever process ran it) is counted, logged by image and transform, shown as
``data/dropped`` in the log line, and warned about past ``warn_ratio``; with DataLoader workers and
across 2 gloo ranks. CheckedRunner adds the hook when the training dataset tracks drops."""
import glob
import json
import os
import re

import pytest
from mmengine.config import Config

from mmdet_maskdino.engine.runner import with_dropped_samples_hook
from mmdet_maskdino.testing import REPO_ROOT, run_tool
from mmdet_maskdino.testing.dropped import drop_log_lines, dropping_runner


def _index_names(root):
    """File names in dataset index order (the order of the images in the json)."""
    with open(os.path.join(root, 'annotations', 'instances_train.json')) as f:
        images = json.load(f)['images']
    return [img['file_name'] for img in sorted(images, key=lambda i: i['id'])]


def _log_text(work_dir):
    (path,) = glob.glob(os.path.join(work_dir, '*', '*.log'))
    with open(path) as f:
        return f.read()


@pytest.mark.parametrize('num_workers', [0, 2])
def test_every_drop_is_counted_logged_and_warned_about(shapes_root, tmp_path, num_workers):
    names = _index_names(shapes_root)
    log_file = str(tmp_path / 'drops.txt')
    runner = dropping_runner(shapes_root, str(tmp_path / 'work'), [names[2]], log_file,
                             num_workers=num_workers)
    runner.train()
    hook = next(h for h in runner.hooks if type(h).__name__ == 'DroppedSamplesHook')
    drops = drop_log_lines(log_file)
    assert len(drops) >= 1 and hook.dropped == len(drops)
    assert hook.used == len(names)  # one epoch: each index gives one sample
    assert runner.message_hub.get_scalar('train/data/dropped').current() == len(drops)
    log = _log_text(str(tmp_path / 'work'))
    assert log.count(f'pipeline dropped {os.path.join(shapes_root, "train", names[2])} '
                     '(transform DropImages returned None)') == len(drops)
    counts = [int(c) for c in re.findall(r'\(train\).*data/dropped: (\d+)', log)]
    assert counts == sorted(counts) and counts[-1] == len(drops)
    assert log.count('were dropped by the pipeline') == 1  # share > 1%, warned once
    (scalars,) = glob.glob(os.path.join(str(tmp_path / 'work'), '*', 'vis_data', 'scalars.json'))
    with open(scalars) as f:  # the visualizer's scalar backend gets the running count too
        logged = [json.loads(line).get('data/dropped') for line in f if line.strip()]
    assert logged[-1] == len(drops) and None not in logged


def test_no_warning_below_the_threshold(shapes_root, tmp_path):
    names = _index_names(shapes_root)
    log_file = str(tmp_path / 'drops.txt')
    runner = dropping_runner(shapes_root, str(tmp_path / 'work'), [names[0]], log_file,
                             warn_ratio=0.9)
    runner.train()
    log = _log_text(str(tmp_path / 'work'))
    assert 'were dropped by the pipeline' not in log
    assert 'pipeline dropped' in log


def test_checked_runner_adds_the_hook_once():
    demo = Config.fromfile(os.path.join(REPO_ROOT, 'configs/demo/maskdino_r18_shapes.py'))
    added = with_dropped_samples_hook(demo)
    assert [h['type'] for h in added.custom_hooks].count('mmdet.DroppedSamplesHook') == 1
    assert 'DroppedSamplesHook' not in str(demo.get('custom_hooks'))  # not modified
    assert with_dropped_samples_hook(added).custom_hooks == added.custom_hooks
    repeated = Config(dict(train_dataloader=dict(dataset=dict(
        type='RepeatDataset', times=2, dataset=dict(type='CheckedCocoPanopticDataset')))))
    assert len(with_dropped_samples_hook(repeated).custom_hooks) == 1
    plain = Config(dict(train_dataloader=dict(dataset=dict(type='CocoDataset'))))
    assert with_dropped_samples_hook(plain) is plain  # mmdet's dataset records nothing


def test_two_gloo_ranks_with_workers_sum_their_drops(shapes_root, tmp_path):
    names = _index_names(shapes_root)
    log_file, out = str(tmp_path / 'drops.txt'), str(tmp_path / 'count.json')
    # index 1 is read by rank 1 (DefaultSampler interleaves indices across ranks)
    proc = run_tool(['-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port',
                     '29543', '-m', 'mmdet_maskdino.testing.dropped', shapes_root,
                     str(tmp_path / 'work'), log_file, '--names', names[1], '--num-workers', '2',
                     '--launcher', 'pytorch', '--out', out])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    with open(out) as f:
        count = json.load(f)
    drops = drop_log_lines(log_file)
    assert len(drops) >= 1
    assert count == dict(dropped=len(drops), used=len(names), logged=len(drops))
