"""A pipeline that drops known images, and a small training run around it (tests of
:class:`~mmdet_maskdino.engine.DroppedSamplesHook`; ``python -m mmdet_maskdino.testing.dropped``
runs one, e.g. under ``torchrun``)."""
import argparse
import json
import os
import os.path as osp
import uuid
from typing import List, Optional

import torch
from mmcv.transforms import BaseTransform
from mmengine.config import Config
from mmengine.model import BaseModel

from mmdet.registry import MODELS, TRANSFORMS
from ..datasets.synthetic_shapes import THING_CLASSES

__all__ = ['DropImages', 'CountingModel', 'dropping_runner', 'drop_log_lines']


@TRANSFORMS.register_module()
class DropImages(BaseTransform):
    """Returns None for the images whose file name is in ``names``, and appends a line per drop to
    ``log_file`` (a record kept outside the process: DataLoader workers and ranks write it too).

    Args:
        names (list[str]): File names (``basename(img_path)``) to drop.
        log_file (str, optional): Where each drop is recorded.
    """

    def __init__(self, names: List[str], log_file: Optional[str] = None) -> None:
        self.names, self.log_file = set(names), log_file

    def transform(self, results: dict) -> Optional[dict]:
        name = osp.basename(results['img_path'])
        if name not in self.names:
            return results
        if self.log_file:
            with open(self.log_file, 'a') as f:
                f.write(name + '\n')
        return None


@MODELS.register_module()
class CountingModel(BaseModel):
    """A one-parameter model whose loss reads the images: trains on any packed batch."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        x = torch.stack([i.float().mean() for i in inputs])
        return dict(loss=(self.scale * x).mean() * 0)


def drop_log_lines(log_file: str) -> List[str]:
    """The drops recorded by :class:`DropImages` (one file name per line)."""
    if not osp.isfile(log_file):
        return []
    with open(log_file) as f:
        return f.read().split()


def dropping_runner(root: str, work_dir: str, names: List[str], log_file: str, *,
                    num_workers: int = 0, launcher: str = 'none', on_dropped: str = 'replace',
                    warn_ratio: float = 0.01, hook: bool = True):
    """An MMEngine runner that trains :class:`CountingModel` for one epoch (no shuffling, batch 2)
    over the shapes dataset at ``root`` through :class:`CheckedCocoDataset` with a pipeline that
    drops ``names``."""
    from mmengine.runner import Runner

    from ..utils.dist import init_cpu_distributed
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='DropImages', names=names, log_file=log_file),
        dict(type='PackDetInputs'),
    ]
    dataset = dict(type='CheckedCocoDataset', data_root=root, metainfo=dict(classes=THING_CLASSES),
                   ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'),
                   on_dropped=on_dropped, pipeline=pipeline)
    loader = dict(batch_size=2, num_workers=num_workers, persistent_workers=False,
                  sampler=dict(type='DefaultSampler', shuffle=False),
                  collate_fn=dict(type='pseudo_collate'), dataset=dataset)
    cfg = Config(dict(
        model=dict(type='CountingModel'), work_dir=work_dir, train_dataloader=loader,
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.0)),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                           checkpoint=dict(type='CheckpointHook', interval=0)),
        custom_hooks=[dict(type='DroppedSamplesHook', warn_ratio=warn_ratio)] if hook else [],
        launcher=launcher, default_scope='mmdet',
        # a logger of its own (runners built in the same second would share one by timestamp)
        experiment_name=f'dropped_{uuid.uuid4().hex[:8]}'))
    init_cpu_distributed(cfg)  # gloo on a CPU-only machine (mmengine assumes CUDA)
    return Runner.from_cfg(cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root')
    parser.add_argument('work_dir')
    parser.add_argument('log_file')
    parser.add_argument('--names', nargs='+', required=True)
    parser.add_argument('--num-workers', type=int, default=0)
    parser.add_argument('--launcher', default='none')
    parser.add_argument('--out', help='json of the hook count (rank 0)')
    args = parser.parse_args()
    import mmdet_maskdino  # noqa: F401  (registers the datasets and the hook)
    runner = dropping_runner(args.root, args.work_dir, args.names, args.log_file,
                             num_workers=args.num_workers, launcher=args.launcher)
    from ..utils.dist import close_distributed
    try:
        runner.train()
        hook = next(h for h in runner.hooks if type(h).__name__ == 'DroppedSamplesHook')
        if args.out and int(os.environ.get('RANK', 0)) == 0:
            with open(args.out, 'w') as f:
                json.dump(dict(dropped=hook.dropped, used=hook.used,
                               logged=int(runner.message_hub.get_scalar(
                                   'train/data/dropped').current())), f)
    finally:
        close_distributed()


if __name__ == '__main__':
    main()
