"""Profile one model's training step: forward and backward per module, the criterion split into
its parts, and the optimiser step.

The training twin of ``profile_inference.py``. Random weights, the speed benchmark's batch (2
generated images with 10-30 objects each, through the model's data preprocessor), AdamW; ``--warmup``
untimed steps, then ``--repeats`` profiled ones. Tables (times per step):

1. forward per module (backbone, pixel decoder, its encoder, query selection, DN building, the
   decoder, the criterion) and per criterion part (matching, of which the Hungarian solve; point
   sampling; class / box / mask losses of each set family: ``layers`` = the initial prediction and
   every decoder layer, ``interm``, ``dn``), inclusive CPU time from ``torch.profiler``;
2. backward per module (wall time from the first gradient reaching the module's outputs to the
   last leaving through its inputs, :class:`BackwardTimer`), the whole ``backward()`` and the
   optimiser step;
3. the most expensive ops (self CPU time, forward and backward together).

Example::

    python tools/analysis_tools/profile_training.py configs/maskdino_r50.py --size 512
"""
import argparse
import logging
import os.path as osp
import sys
import time
from contextlib import ExitStack

import torch
from mmengine.logging import MMLogger
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, osp.dirname(__file__))
from benchmark_speed import build  # noqa: E402

from mmdet_maskdino.benchmarks.profiling import (BackwardTimer, patched,  # noqa: E402
                                                 print_op_table, profile_rows, scoped)

FWD, CRIT = 'fwd::', 'criterion::'


def instrument(model, timer: BackwardTimer, stack: ExitStack) -> None:
    """Forward scopes and backward timers on the parts of a Mask DINO (any other model: backbone
    and head only)."""
    import mmdet.models.task_modules.assigners.hungarian_assigner as hungarian
    head = model.panoptic_head if hasattr(model, 'panoptic_head') else model.bbox_head
    modules = {'backbone': model.backbone, 'head': head}
    for name in ('pixel_decoder', 'decoder', 'criterion'):
        if isinstance(getattr(head, name, None), torch.nn.Module):
            modules[name.replace('_', ' ')] = getattr(head, name)
    if getattr(head, 'dn_generator', None) is not None:  # called through its class's __call__
        stack.enter_context(patched(type(head.dn_generator), '__call__', FWD + 'DN building'))
    encoder = getattr(modules.get('pixel decoder'), 'encoder', None)
    if encoder is not None:
        modules['pixel decoder / encoder'] = encoder
    for name, module in modules.items():
        timer.attach(name, module)
        module.forward = scoped(module.forward, FWD + name)
    if hasattr(head, '_select_queries'):
        head._select_queries = scoped(head._select_queries, FWD + 'query selection')
    criterion = getattr(head, 'criterion', None)
    stack.enter_context(patched(hungarian, 'linear_sum_assignment', CRIT + 'Hungarian solve'))
    if criterion is None or not hasattr(criterion, 'loss_by_feat_single'):
        return
    from mmdet_maskdino.models.losses import maskdino_criterion as crit_module
    from mmdet_maskdino.models.utils.point_masks import MatchPoints, TargetPoints
    # upstream's per-set draws (share_points=False) and the shared ones (default)
    for fn in ('uncertain_points', 'sample_masks', 'shared_uncertain_points'):
        stack.enter_context(patched(crit_module, fn, CRIT + 'point sampling'))
    for cls in (MatchPoints, TargetPoints):  # once per image and step (shared points)
        stack.enter_context(patched(cls, 'draw', CRIT + 'point drawing (once per step)'))
    criterion.match = scoped(criterion.match, CRIT + 'matching (costs + Hungarian)')
    layer_sets = head.decoder.num_layers + int(head.initial_pred)
    interm_sets = int(getattr(head, 'two_stage', False))
    state = dict(call=0, family='layers')
    single = criterion.loss_by_feat_single

    def per_family(*args, **kwargs):
        n = state['call']
        state['call'] += 1
        state['family'] = ('layers' if n < layer_sets else
                           'interm' if n < layer_sets + interm_sets else 'dn')
        with record_function(f"{CRIT}losses {state['family']} (all)"):
            return single(*args, **kwargs)
    criterion.loss_by_feat_single = per_family
    for part, fn in (('class', '_class_loss'), ('box', '_box_losses'), ('mask', '_mask_losses')):
        original = getattr(criterion, fn)

        def in_family(*args, __fn=original, __part=part, **kwargs):
            with record_function(f"{CRIT}losses {state['family']} {__part}"):
                return __fn(*args, **kwargs)
        setattr(criterion, fn, in_family)
    forward = criterion.forward

    def reset_calls(*args, **kwargs):
        state['call'] = 0
        return forward(*args, **kwargs)
    criterion.forward = reset_calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--size', type=int, default=512, help='square image side')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument('--amp', action='store_true', help='bf16 autocast (CPU)')
    parser.add_argument('--top', type=int, default=25, help='ops to list')
    parser.add_argument('--data-root', default=None,
                        help='generated images (default data/bench_<size>/)')
    args = parser.parse_args()
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    from mmdet_maskdino.benchmarks.speed import crowded_images, training_batch
    torch.manual_seed(0)
    model = build(args.config, 'cpu', args.size).train()
    images = crowded_images(args.data_root or f'data/bench_{args.size}/', args.size)
    batch = training_batch(model, images)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    timer = BackwardTimer()
    backward_s, step_s, total_s = [], [], []

    def step(profiled: bool) -> None:
        timer.reset()
        start = time.perf_counter()
        with record_function('step::<total>'):
            with torch.autocast('cpu', dtype=torch.bfloat16, enabled=args.amp):
                losses = model(**batch, mode='loss')
            loss = sum(v for k, v in losses.items() if 'loss' in k)
            optim.zero_grad()
            with record_function('step::backward'):
                t0 = time.perf_counter()
                loss.backward()
                timer.finish()
                t1 = time.perf_counter()
            with record_function('step::optimizer step'):
                optim.step()
            t2 = time.perf_counter()
        if profiled:
            backward_s.append(t1 - t0)
            step_s.append(t2 - t1)
            total_s.append(t2 - start)
            totals.append(timer.totals())

    totals = []
    with ExitStack() as stack:
        instrument(model, timer, stack)
        for _ in range(args.warmup):
            step(False)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.repeats):
                step(True)
    events = prof.key_averages()
    total_us = next(e for e in events if e.key == 'step::<total>').cpu_time_total
    n = args.repeats
    print(f'\n### {args.config}, {args.size}x{args.size}, {[len(i.labels) for i in images]} '
          f'objects, {"bf16 autocast" if args.amp else "fp32"}, torch {torch.__version__}, '
          f'threads={torch.get_num_threads()}, {n} steps (under the profiler: '
          f'{sum(total_s) / n:.2f} s per step)\n')
    print('| forward | calls | ms per step | share of step |')
    print('|---|---|---|---|')
    for name, calls, ms, share in profile_rows(events, FWD, n, total_us):
        print(f'| {name} | {calls} | {ms:.1f} | {share:.1%} |')
    print('\n| criterion part (forward) | calls | ms per step | share of step |')
    print('|---|---|---|---|')
    for name, calls, ms, share in profile_rows(events, CRIT, n, total_us):
        print(f'| {name} | {calls} | {ms:.1f} | {share:.1%} |')
    print('\n| backward / optimiser | ms per step | share of step |')
    print('|---|---|---|')
    step_total = sum(total_s) / n
    for name in sorted({k for t in totals for k in t}):
        ms = sum(t.get(name, 0.0) for t in totals) / n * 1e3
        print(f'| backward: {name} | {ms:.1f} | {ms / 1e3 / step_total:.1%} |')
    for name, values in (('backward() in all', backward_s), ('optimizer step', step_s)):
        ms = sum(values) / n * 1e3
        print(f'| {name} | {ms:.1f} | {ms / 1e3 / step_total:.1%} |')
    print_op_table(events, total_us, n, args.top, 'step', (FWD, CRIT, 'step::'))


if __name__ == '__main__':
    main()
