"""Profile one model's ``predict`` with ``torch.profiler``: time per module and per op.

Random weights (the timing does not depend on them), one generated image, ``--warmup`` untimed runs
then ``--repeats`` profiled ones. Prints two markdown tables: the top-level modules of the model
(``record_function`` around each child of the backbone / head / fusion head) and the most expensive
ops (self CPU time).

Example::

    python tools/analysis_tools/profile_inference.py configs/maskdino_r50.py --size 512
"""
import argparse
import logging
import os.path as osp
import sys
from collections import defaultdict
from typing import Dict

import torch
from mmengine.logging import MMLogger
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, osp.dirname(__file__))
from benchmark_speed import build, make_batch  # noqa: E402

from mmdet_maskdino.benchmarks.profiling import print_op_table  # noqa: E402


def module_scopes(model: nn.Module, depth: int = 3) -> Dict[str, nn.Module]:
    """Modules to time: the children of the model, and of its head / pixel decoder, down to
    ``depth`` dots (each gets a ``record_function`` scope named by its path)."""
    scopes = {}
    for name, module in model.named_modules():
        if name and name.count('.') < depth and not isinstance(module, (nn.ModuleList,
                                                                      nn.Sequential)):
            scopes[name] = module
    return scopes


def wrap(scopes: Dict[str, nn.Module]) -> None:
    for name, module in scopes.items():
        forward = module.forward

        def scoped(*args, __forward=forward, __name=name, **kwargs):
            with record_function(f'module::{__name}'):
                return __forward(*args, **kwargs)
        module.forward = scoped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--size', type=int, nargs=2, default=[512, 512], metavar=('H', 'W'))
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument('--depth', type=int, default=3, help='module name depth to time')
    parser.add_argument('--top', type=int, default=25, help='ops to list')
    args = parser.parse_args()
    MMLogger.get_current_instance().setLevel(logging.WARNING)  # init_weights' per-parameter report
    h, w = args.size
    model = build(args.config, 'cpu', max(h, w)).eval()
    batch = make_batch(model, (h, w), 'cpu', training=False)
    wrap(module_scopes(model, args.depth))
    with torch.no_grad():
        for _ in range(args.warmup):
            model(**batch, mode='predict')
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.repeats):
                with record_function('module::<total>'):
                    model(**batch, mode='predict')
    events = prof.key_averages()
    total = next(e for e in events if e.key == 'module::<total>').cpu_time_total
    print(f'\n### {args.config}, {h}x{w}, torch {torch.__version__}, '
          f'threads={torch.get_num_threads()}, {args.repeats} runs\n')
    print('| module | time per run (ms) | share |')
    print('|---|---|---|')
    rows = sorted((e for e in events if e.key.startswith('module::')),
                  key=lambda e: e.key)
    for e in rows:
        print(f'| {e.key[8:]} x{e.count // args.repeats} | '
              f'{e.cpu_time_total / 1e3 / args.repeats:.1f} | {e.cpu_time_total / total:.1%} |')
    print_op_table(events, total, args.repeats, args.top, scope_prefixes=('module::', ))


if __name__ == '__main__':
    main()
