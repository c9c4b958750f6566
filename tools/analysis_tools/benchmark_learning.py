"""Learning benchmark: Mask DINO vs mmdet's Mask2Former, same backbone, data, budget and seeds.

Both demo configs use ResNet-18 from scratch, 64 channels, 2 encoder / 3 decoder layers, 30 queries,
128x128 images, batch 4, AdamW 1e-3, the same iterations and seeds, on a generated shapes train
split (``--num-train`` images); both are evaluated with CocoMetric on its val split (``--num-val`` images)
every ``--val-interval`` iterations. With several ``--seeds`` it prints the mean +- std of box and
mask AP per evaluation and each seed's final AP (AP on a few hundred synthetic images moves by
several points from seed to seed, so one seed decides nothing). Curves go to ``curves.json`` in
``--work-dir``.

The defaults (600 iterations, seeds 0 1 2, 512 / 128 images) are the README's table: about 27
minutes on a 2-core CPU. ``--lr`` trains both models at another learning rate (the configs' own
1e-3 otherwise; the COCO configs use 1e-4), ``--models`` runs a subset, and ``--cfg-options`` changes
the Mask DINO config only (e.g. ``model.panoptic_head.cls_prior_prob=0.01``, the focal prior). Example
of a quick single-seed look::

    python tools/analysis_tools/benchmark_learning.py --iters 300 --val-interval 100 --seeds 0
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

from mmdet_maskdino.benchmarks.learning import (seconds_per_iter, shapes_run_options,
                                                summarise_seeds, train_curve)

PAIR = {
    'Mask DINO': 'configs/demo/maskdino_r18_shapes.py',
    'Mask2Former (mmdet)': 'configs/demo/mask2former_r18_shapes.py',
}
#: ``--models`` choices -> names of :data:`PAIR`.
MODEL_KEYS = {'maskdino': 'Mask DINO', 'mask2former': 'Mask2Former (mmdet)'}


def train_and_read(name: str, config: str, work_dir: str, args: argparse.Namespace,
                   seed: int) -> list:
    """Train one config with one seed through ``tools/train.py``; return its AP curve."""
    options = shapes_run_options(args.data_root, args.iters, args.val_interval, seed)
    if args.lr is not None:
        options.append(f'optim_wrapper.optimizer.lr={args.lr}')
    if name == 'Mask DINO':
        options += args.cfg_options
    return train_curve(config, work_dir, options, args.val_interval, args.iters)


def _finished_runs(args: argparse.Namespace) -> dict:
    """``{name: {seed: curve}}`` of the work dir's curves.json runs that reached ``--iters``."""
    path = osp.join(args.work_dir, 'curves.json')
    if not osp.isfile(path):
        return {}
    with open(path) as f:
        saved = json.load(f)['curves']
    return {name: {int(seed): [tuple(p) for p in curve] for seed, curve in runs.items()
                   if curve and curve[-1][0] == args.iters}
            for name, runs in saved.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=int, default=600)
    parser.add_argument('--val-interval', type=int, default=200)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--num-train', type=int, default=512)
    parser.add_argument('--num-val', type=int, default=128)
    parser.add_argument('--data-root', default=None,
                        help='default: data/shapes_<num-train>_<num-val>/ (generated once)')
    parser.add_argument('--work-dir', default='work_dirs/benchmark_learning')
    parser.add_argument('--lr', type=float, default=None,
                        help="both models' learning rate (default: the configs' 1e-3)")
    parser.add_argument('--models', nargs='+', choices=sorted(MODEL_KEYS),
                        default=sorted(MODEL_KEYS, reverse=True))
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='extra key=value options of the Mask DINO config only')
    parser.add_argument('--reuse', action='store_true',
                        help="keep the curves of --work-dir's curves.json that reached --iters "
                             '(an interrupted benchmark continues with the runs it lacks)')
    args = parser.parse_args()
    pair = {MODEL_KEYS[m]: PAIR[MODEL_KEYS[m]] for m in args.models}
    args.data_root = args.data_root or f'data/shapes_{args.num_train}_{args.num_val}/'

    subprocess.run([sys.executable, 'tools/dataset_converters/make_shapes_dataset.py',
                    args.data_root, '--num-train', str(args.num_train), '--num-val',
                    str(args.num_val), '--size', '128', '128'], check=True)
    curves = {name: {} for name in pair}
    wall = {name: 0.0 for name in pair}
    per_iter = {name: [] for name in pair}
    done = _finished_runs(args) if args.reuse else {}
    os.makedirs(args.work_dir, exist_ok=True)
    for seed in args.seeds:  # seeds outermost: an interrupted run still has matched pairs
        for name, config in pair.items():
            if seed in done.get(name, {}):
                curves[name][seed] = done[name][seed]
                print(f'[benchmark_learning] seed {seed}: {name} reused from curves.json',
                      flush=True)
                continue
            stem = osp.splitext(osp.basename(config))[0]
            work_dir = osp.join(args.work_dir, f'{stem}_seed{seed}')
            print(f'[benchmark_learning] seed {seed}: training {name} ({config}) ...', flush=True)
            start = time.time()
            curves[name][seed] = train_and_read(name, config, work_dir, args, seed)
            wall[name] += time.time() - start
            per_iter[name].append(seconds_per_iter(work_dir))
            with open(osp.join(args.work_dir, 'curves.json'), 'w') as f:
                json.dump(dict(curves=curves, wall_s=wall, args=vars(args)), f, indent=1)

    names = list(pair)
    summary = {n: summarise_seeds(curves[n]) for n in names}
    print(f'\n### Learning on generated shapes (train {args.num_train} / val {args.num_val}, '
          f'128x128), {args.iters} iterations, lr {args.lr or "1e-3 (configs)"}, '
          f'seeds {args.seeds} (mean +- std)'
          f'{f", Mask DINO options {args.cfg_options}" if args.cfg_options else ""}\n')
    print('| iter | ' + ' | '.join(f'{n} box AP | {n} mask AP' for n in names) + ' |')
    print('|---|' + '---|---|' * len(names))
    for rows in zip(*(summary[n] for n in names)):
        cells = [f'{r["box_mean"]:.3f} +- {r["box_std"]:.3f} | '
                 f'{r["mask_mean"]:.3f} +- {r["mask_std"]:.3f}' for r in rows]
        print(f'| {rows[0]["iter"]} | ' + ' | '.join(cells) + ' |')
    print('\nfinal AP per seed (box / mask):')
    for n in names:
        print(f'- {n}: ' + ', '.join(f'seed {s} {c[-1][1]:.3f} / {c[-1][2]:.3f}'
                                     for s, c in curves[n].items() if c))
    print('\nwall time: ' + ', '.join(f'{n} {wall[n]:.0f}s' for n in names))
    trained = [n for n in names if per_iter[n]]
    if trained:  # runs of this invocation (reused ones have no fresh timing)
        medians = {n: statistics.median(per_iter[n]) for n in trained}
        print('seconds per training iteration (median of the logged times after iteration 20, '
              'median over seeds): ' + ', '.join(f'{n} {medians[n]:.3f}' for n in trained) +
              (f'; ratio {medians[names[0]] / medians[names[1]]:.2f}x'
               if len(trained) == 2 else ''))


if __name__ == '__main__':
    main()
