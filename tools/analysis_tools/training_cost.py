"""The work one training step requires, per part of the model, for several models side by side.

Machine-independent counts (see :mod:`mmdet_maskdino.benchmarks.cost`): matmul / conv FLOPs of the
forward and backward passes, deformable-attention samples, bytes kept for the backward pass, and
the peak of live tensors during the step. Random weights, the speed benchmark's batch (2 generated
images with 10-30 objects each, through each model's data preprocessor). One untimed warm-up
step first, so that lazily built buffers are not counted.

Example::

    python tools/analysis_tools/training_cost.py configs/maskdino_r50.py \\
        mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py --size 512

The last column is the first config's count over the second's.
"""
import argparse
import logging
import os.path as osp
import sys
from typing import Dict, List

import torch
from mmengine.logging import MMLogger

sys.path.insert(0, osp.dirname(__file__))
from benchmark_speed import build  # noqa: E402

from mmdet_maskdino.benchmarks.cost import (StepCost, coarse_group, count_step,  # noqa: E402
                                            merged, peak_live_bytes)

MIB, GFLOP = 2.0**20, 1e9
ORDER = ('backbone', 'neck', 'pixel decoder (other)', 'encoder', 'decoder and heads',
         'losses and matching')


def measure(config: str, size: int, data_root: str) -> Dict[str, object]:
    """Counts of one config: the coarse-grouped :class:`StepCost`, the fine one, and the peak
    live tensor bytes of a step."""
    from mmdet_maskdino.benchmarks.speed import crowded_images, training_batch
    torch.manual_seed(0)
    model = build(config, 'cpu', size).train()
    images = crowded_images(data_root or f'data/bench_{size}/', size)
    batch = training_batch(model, images)

    def loss() -> torch.Tensor:
        losses = model(**batch, mode='loss')
        return sum(v for k, v in losses.items() if 'loss' in k)

    loss().backward()  # warm-up
    model.zero_grad(set_to_none=True)
    fine = count_step(model, loss)
    peak, _ = peak_live_bytes(lambda: loss().backward())
    model.zero_grad(set_to_none=True)
    return dict(fine=fine, coarse=merged(fine, {g: coarse_group(g) for g in fine.forward_flop}),
                peak=peak, objects=[len(i.labels) for i in images])


def ratio(a: float, b: float) -> str:
    return f'{a / b:.2f}x' if b else '-'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+', help='configs (mmdet::path for mmdet\'s own)')
    parser.add_argument('--size', type=int, default=512, help='square image side')
    parser.add_argument('--data-root', default=None,
                        help='generated images (default data/bench_<size>/)')
    parser.add_argument('--fine', action='store_true', help='also list every group of each model')
    args = parser.parse_args()
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    results = [measure(c, args.size, args.data_root) for c in args.configs]
    names = [osp.basename(c).split('|')[0].replace('.py', '') for c in args.configs]
    two = len(results) == 2
    print(f'\n### Work of one training step, {args.size}x{args.size}, objects per image '
          f'{results[0]["objects"]}, torch {torch.__version__}\n')
    head = ' | '.join(f'{n} fwd / bwd GFLOP | {n} saved MiB' for n in names)
    print(f'| part | {head} |' + (' FLOP ratio | saved ratio |' if two else ''))
    print('|---|' + '---|---|' * len(names) + ('---|---|' if two else ''))
    groups = [g for g in ORDER if any(g in r['coarse'].forward_flop for r in results)]
    for group in groups:
        row, flop, saved = [], [], []
        for r in results:
            c: StepCost = r['coarse']
            f, b = c.forward_flop.get(group, 0.0), c.backward_flop.get(group, 0.0)
            s = c.saved_bytes.get(group, 0.0)
            row.append(f'{f / GFLOP:.1f} / {b / GFLOP:.1f} | {s / MIB:.0f}')
            flop.append(f + b)
            saved.append(s)
        extra = f' {ratio(*flop)} | {ratio(*saved)} |' if two else ''
        print(f'| {group} | ' + ' | '.join(row) + ' |' + extra)

    totals: List[tuple] = []
    for r in results:
        c = r['coarse']
        samples = c.total('msda_samples')
        gathered = sum(n * 4 * c.msda_channels.get(g, 0) * 4 for g, n in c.msda_samples.items())
        adam = c.num_params * 4 * 3  # weights, exp_avg, exp_avg_sq (gradients: in the peak)
        totals.append((c.num_params / 1e6, c.total('forward_flop') / GFLOP,
                       c.total('backward_flop') / GFLOP,
                       (c.total('forward_flop') + c.total('backward_flop')) / GFLOP,
                       samples / 1e6, gathered / 1e6, c.total('saved_bytes') / MIB,
                       r['peak'] / MIB, (r['peak'] + adam) / MIB))
    labels = ('parameters (M)', 'forward GFLOP', 'backward GFLOP', 'total GFLOP',
              'deformable-attention samples (M)', 'bytes those samples gather (MB, fp32)',
              'saved for backward (MiB)', 'peak live tensors of the step (MiB)',
              'peak + weights and Adam state (MiB)')
    print(f'\n| total | {" | ".join(names)} |' + (' ratio |' if two else ''))
    print('|---|' + '---|' * len(names) + ('---|' if two else ''))
    for i, label in enumerate(labels):
        values = [t[i] for t in totals]
        extra = f' {ratio(*values)} |' if two else ''
        print(f'| {label} | ' + ' | '.join(f'{v:.1f}' for v in values) + ' |' + extra)

    if args.fine:
        for name, r in zip(names, results):
            c = r['fine']
            print(f'\n#### {name}: every group\n')
            print('| group | fwd GFLOP | bwd GFLOP | deformable samples (M) | saved MiB |')
            print('|---|---|---|---|---|')
            for g in c.forward_flop:
                print(f'| {g} | {c.forward_flop[g] / GFLOP:.2f} | '
                      f'{c.backward_flop[g] / GFLOP:.2f} | '
                      f'{c.msda_samples.get(g, 0.0) / 1e6:.2f} | '
                      f'{c.saved_bytes[g] / MIB:.0f} |')


if __name__ == '__main__':
    main()
