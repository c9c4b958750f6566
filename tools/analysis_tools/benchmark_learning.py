"""Learning benchmark: Mask DINO vs mmdet's Mask2Former, same backbone, data, budget and seed.

Both demo configs use ResNet-18 from scratch, 64 channels, 2 encoder / 3 decoder layers, 30 queries,
128x128 images, batch 4, AdamW 1e-3, the same iterations and seed, on the generated shapes train split;
both are evaluated with CocoMetric on its val split every ``--val-interval`` iterations. Prints the AP
curves as a markdown table (and writes them as json next to the work dirs).

Example::

    python tools/analysis_tools/benchmark_learning.py --iters 300 --val-interval 100
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

from mmdet_maskdino.benchmarks.zoo import read_curve

PAIR = {
    'Mask DINO': 'configs/demo/maskdino_r18_shapes.py',
    'Mask2Former (mmdet)': 'configs/demo/mask2former_r18_shapes.py',
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=int, default=300)
    parser.add_argument('--val-interval', type=int, default=100)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--data-root', default='data/shapes/')
    parser.add_argument('--work-dir', default='work_dirs/benchmark_learning')
    args = parser.parse_args()

    subprocess.run([sys.executable, 'tools/dataset_converters/make_shapes_dataset.py',
                    args.data_root, '--num-train', '64', '--num-val', '16', '--size', '128',
                    '128'], check=True)
    ann = osp.join(args.data_root, 'annotations/instances_val.json')
    curves, wall = {}, {}
    for name, config in PAIR.items():
        work_dir = osp.join(args.work_dir, osp.splitext(osp.basename(config))[0])
        options = [
            f'train_cfg.max_iters={args.iters}', f'train_cfg.val_interval={args.val_interval}',
            f'param_scheduler.end={args.iters}',
            f'param_scheduler.milestones=[{int(args.iters * 5 / 6)}]',
            f'default_hooks.checkpoint.interval={args.iters}', f'randomness.seed={args.seed}',
            f'train_dataloader.dataset.data_root={args.data_root}',
            f'val_dataloader.dataset.data_root={args.data_root}', f'val_evaluator.ann_file={ann}'
        ]
        start = time.time()
        print(f'[benchmark_learning] training {name} ({config}) ...', flush=True)
        subprocess.run([sys.executable, 'tools/train.py', config, '--work-dir', work_dir,
                        '--cfg-options', *options], check=True, stdout=subprocess.DEVNULL,
                       env=dict(os.environ, PYTHONWARNINGS='ignore'))
        wall[name] = time.time() - start
        curves[name] = [(p['iter'], p['box AP'], p['mask AP']) for p in read_curve(
            work_dir, args.val_interval, args.iters, last_run_only=True)]
    with open(osp.join(args.work_dir, 'curves.json'), 'w') as f:
        json.dump(dict(curves=curves, wall_s=wall, args=vars(args)), f, indent=1)
    names = list(PAIR)
    print(f'\n### Learning on generated shapes (train 64 / val 16, 128x128), {args.iters} iterations, '
          f'seed {args.seed}\n')
    print('| iter | ' + ' | '.join(f'{n} box AP | {n} mask AP' for n in names) + ' |')
    print('|---|' + '---|---|' * len(names))
    for rows in zip(*(curves[n] for n in names)):
        print(f'| {rows[0][0]} | ' + ' | '.join(f'{r[1]:.3f} | {r[2]:.3f}' for r in rows) + ' |')
    print('\nwall time: ' + ', '.join(f'{n} {wall[n]:.0f}s' for n in names))


if __name__ == '__main__':
    main()
