"""Fine-tune the demo Mask DINO from an UP-DETR-pretrained transformer vs from scratch.

For every labelled split size (``--splits``: the first N training images of the generated
shapes dataset) and seed, both arms start from the **same** initial weights (the target
config's initialisation with that seed, saved to a file); the UP-DETR arm additionally has the
pretext's transformer weights in it (:func:`pretrained_transformer_state`). Both train the same
iterations through ``tools/train.py`` and are evaluated (CocoMetric, box and mask AP) on the
same validation split every ``--val-interval`` iterations. Prints markdown tables (mean +- std
over seeds) and writes ``curves.json``.

Example::

    python projects/updetr/tools/finetune_comparison.py \\
        work_dirs/updetr_pretrain/iter_1000.pth --splits 64 512 --seeds 0 1
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Optional

import torch

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..')))

from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

import mmdet_maskdino  # noqa: F401,E402
from mmdet.registry import MODELS  # noqa: E402
from mmdet_maskdino.benchmarks.learning import (shapes_run_options, summarise_seeds,  # noqa: E402
                                                 train_curve)
from projects.updetr.updetr import pretrained_transformer_state  # noqa: E402

TARGET = 'configs/demo/maskdino_r18_shapes.py'
ARMS = ('scratch', 'UP-DETR')


def start_points(pretext_ckpt: str, seed: int, out_dir: str,
                 backbone_ckpt: Optional[str] = None) -> dict:
    """The two arms' initial checkpoints for ``seed`` (same init, the backbone of
    ``backbone_ckpt`` if given; one with the pretext's transformer)."""
    init_default_scope('mmdet')
    torch.manual_seed(seed)
    target = MODELS.build(Config.fromfile(TARGET).model)
    target.init_weights()
    if backbone_ckpt:
        weights = torch.load(backbone_ckpt, map_location='cpu', weights_only=True)['state_dict']
        target.load_state_dict({k: v for k, v in weights.items() if k.startswith('backbone.')},
                               strict=False)
    pretext = torch.load(pretext_ckpt, map_location='cpu', weights_only=True)['state_dict']
    state, report = pretrained_transformer_state(pretext, target)
    paths = {}
    for arm, sd in (('scratch', target.state_dict()), ('UP-DETR', state)):
        paths[arm] = osp.join(out_dir, f'init_{arm.replace("-", "").lower()}_seed{seed}.pth')
        torch.save(dict(state_dict=sd), paths[arm])
    print(report.summary(), flush=True)
    return paths


def train_and_read(init: str, work_dir: str, num_train: int, seed: int,
                   args: argparse.Namespace) -> list:
    options = [f'load_from={init}', f'train_dataloader.dataset.indices={num_train}',
               *shapes_run_options(args.data_root, args.iters, args.val_interval, seed)]
    return train_curve(TARGET, work_dir, options, args.val_interval, args.iters)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('pretext_checkpoint')
    parser.add_argument('--splits', type=int, nargs='+', default=[64, 512])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--iters', type=int, default=300)
    parser.add_argument('--val-interval', type=int, default=100)
    parser.add_argument('--backbone', help='checkpoint whose backbone both arms start from '
                        '(the pretext\'s frozen backbone)')
    parser.add_argument('--data-root', default='data/shapes_512_128/')
    parser.add_argument('--work-dir', default='work_dirs/updetr_finetune')
    args = parser.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    curves = {split: {arm: {} for arm in ARMS} for split in args.splits}
    for seed in args.seeds:
        inits = start_points(args.pretext_checkpoint, seed, args.work_dir, args.backbone)
        for split in args.splits:
            for arm in ARMS:
                work_dir = osp.join(args.work_dir, f'{split}_{arm.lower()}_seed{seed}')
                print(f'[finetune] split {split}, seed {seed}: {arm} ...', flush=True)
                curves[split][arm][seed] = train_and_read(inits[arm], work_dir, split, seed,
                                                          args)
                with open(osp.join(args.work_dir, 'curves.json'), 'w') as f:
                    json.dump(dict(curves=curves, args=vars(args)), f, indent=1)
    for split in args.splits:
        summary = {arm: summarise_seeds(curves[split][arm]) for arm in ARMS}
        print(f'\n### Fine-tuning on {split} labelled images, {args.iters} iterations, seeds '
              f'{args.seeds} (mean +- std)\n')
        print('| iter | ' + ' | '.join(f'{a} box AP | {a} mask AP' for a in ARMS) + ' |')
        print('|---|' + '---|---|' * len(ARMS))
        for rows in zip(*(summary[a] for a in ARMS)):
            cells = [f'{r["box_mean"]:.3f} +- {r["box_std"]:.3f} | '
                     f'{r["mask_mean"]:.3f} +- {r["mask_std"]:.3f}' for r in rows]
            print(f'| {rows[0]["iter"]} | ' + ' | '.join(cells) + ' |')
        for arm in ARMS:
            print(f'- {arm}: ' + ', '.join(f'seed {s} {c[-1][1]:.3f} / {c[-1][2]:.3f}'
                                           for s, c in curves[split][arm].items() if c))


if __name__ == '__main__':
    main()
