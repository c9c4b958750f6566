"""A 2-process CPU run the way multi-GPU users launch: torchrun + --launcher pytorch (gloo)."""
import os.path as osp
import re

from mmdet_maskdino.testing import run_tool


def test_torchrun_two_processes_trains(shapes_root, tmp_path):
    work_dir = tmp_path / 'ddp'
    options = [
        f'train_dataloader.dataset.data_root={shapes_root}',
        f'val_dataloader.dataset.data_root={shapes_root}',
        f'test_dataloader.dataset.data_root={shapes_root}',
        f'val_evaluator.ann_file={osp.join(shapes_root, "annotations/instances_val.json")}',
        f'test_evaluator.ann_file={osp.join(shapes_root, "annotations/instances_val.json")}',
        'train_cfg.max_iters=3', 'train_cfg.val_interval=3', 'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=3', 'train_dataloader.batch_size=2',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'val_dataloader.persistent_workers=False'
    ]
    proc = run_tool(['-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port',
                     '29541', 'tools/train.py', 'configs/demo/maskdino_r18_shapes.py',
                     '--launcher', 'pytorch', '--work-dir', str(work_dir), '--cfg-options',
                     *options])
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'Distributed training: True' in log and 'GPU number: 2' in log  # world size 2
    assert 'MMDistributedDataParallel' in log
    steps = re.findall(r'Iter\(train\) \[(\d)/3\].* loss: ([\d.]+)', log)
    assert [s for s, _ in steps] == ['1', '2', '3']
    assert all(float(v) > 0 for _, v in steps)
    assert 'coco/segm_mAP' in log
    assert osp.isfile(work_dir / 'iter_3.pth')
