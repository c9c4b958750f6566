"""Speed benchmark: Mask DINO R50 vs mmdet's Mask2Former R50 (inference, training step, memory).

Inference: every model in this process, on the same 512x512 image, timed alternately (A, B, A, B,
...) after warm-up; the table reports medians and the ratio. Training: 2 generated images with 10-30
objects each (``mmdet_maskdino.benchmarks.speed``), at 512 and 1024 (the LSJ size); one persistent
worker process per model, the workers step in turn (A, B, A, B, ...), so step times are measured side
by side and each process has its own peak memory (peak RSS on CPU, ``max_memory_allocated`` on CUDA).
Prints markdown tables.

Example::

    python tools/analysis_tools/benchmark_speed.py --train-sizes 512 1024 --train-steps 5
"""
import argparse
import ctypes
import json
import statistics
import subprocess
import sys
import time
from typing import Dict, List

import numpy as np
import torch

MODELS_TO_COMPARE = {
    'Mask DINO R50 (4 levels, enc FFN 2048)': 'configs/maskdino_r50.py',
    'Mask DINO R50-3s (3 levels, enc FFN 1024)': 'configs/maskdino/maskdino_r50-3s_8xb2-lsj-50e_coco.py',
    'Mask2Former R50 (mmdet)': 'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py',
}
REFERENCE = 'Mask2Former R50 (mmdet)'
MARK = '@@benchmark '  # prefix of a worker's result lines
#: activation checkpointing of every encoder and decoder layer (``with_cp``)
WITH_CP = ('model.panoptic_head.pixel_decoder.encoder.with_cp=True,'
           'model.panoptic_head.transformer_decoder.with_cp=True')
#: trained side by side: the released model (with and without ``with_cp``) against Mask2Former;
#: a config may end with ``|key=value,...`` options
RELEASED = 'Mask DINO R50 (4 levels, enc FFN 2048)'
TRAIN_MODELS = {
    RELEASED: MODELS_TO_COMPARE[RELEASED],
    'Mask DINO R50, with_cp': MODELS_TO_COMPARE[RELEASED] + '|' + WITH_CP,
    REFERENCE: MODELS_TO_COMPARE[REFERENCE],
}


def build(config: str, device: str, size: int):
    """Model from a config, random weights (no download), BatchFixedSizePad set to ``size``.

    ``config`` may end with ``|key=value,key=value`` config options (values: Python literals).
    """
    import ast
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmdet_maskdino  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet_maskdino.benchmarks.zoo import resolve_config
    config, _, options = config.partition('|')
    cfg = Config.fromfile(resolve_config(config))  # mmdet::x.py: a config shipped in mmdet
    cfg.merge_from_dict({k: ast.literal_eval(v) for k, v in
                         (item.split('=', 1) for item in options.split(',') if item)})
    init_default_scope('mmdet')
    cfg.model.backbone.init_cfg = None
    for aug in cfg.model.data_preprocessor.get('batch_augments') or []:
        aug['size'] = (size, size)
    model = MODELS.build(cfg.model).to(device)
    model.init_weights()
    return model


def make_batch(model, size: int, device: str, training: bool, seed: int = 0):
    from mmdet_maskdino.testing import make_det_batch
    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(5):
        y, x = rng.integers(0, size - 100, 2)
        m = np.zeros((size, size), bool)
        m[y:y + 100, x:x + 80] = True
        masks.append(m)
    batch = make_det_batch(model, [masks], [[1, 2, 3, 4, 5]], image_size=(size, size),
                           seed=seed, training=training)
    batch['inputs'] = batch['inputs'].to(device)
    for s in batch['data_samples']:
        s.gt_instances = s.gt_instances.to(device)
    return batch


def time_inference(models: Dict[str, torch.nn.Module], size: int, device: str, warmup: int,
                   repeats: int) -> Dict[str, List[float]]:
    batches = {k: make_batch(m, size, device, training=False) for k, m in models.items()}
    times: Dict[str, List[float]] = {k: [] for k in models}
    with torch.no_grad():
        for i in range(warmup + repeats):
            for name, model in models.items():
                if device == 'cuda':
                    torch.cuda.synchronize()
                start = time.perf_counter()
                model(**batches[name], mode='predict')
                if device == 'cuda':
                    torch.cuda.synchronize()
                if i >= warmup:
                    times[name].append(time.perf_counter() - start)
    return times


def train_worker(config: str, size: int, device: str, data_root: str) -> None:
    """Subprocess body: build ``config``, one warm-up step, then one timed training step per
    ``step`` line read from stdin (a json line each); ``stop`` prints the peak memory and exits."""
    import resource

    from mmdet_maskdino.benchmarks.speed import crowded_images, training_batch
    torch.manual_seed(0)
    model = build(config, device, size).train()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images = crowded_images(data_root, size)
    batch = training_batch(model, images, device)

    def step() -> float:
        if device == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        losses = model(**batch, mode='loss')
        total = sum(v for k, v in losses.items() if 'loss' in k)
        optim.zero_grad()
        total.backward()
        optim.step()
        if device == 'cuda':
            torch.cuda.synchronize()
        return time.perf_counter() - start

    step()  # warm-up
    print(MARK + json.dumps(dict(ready=True, objects=[len(i.labels) for i in images],
                          params_m=sum(p.numel() for p in model.parameters()) / 1e6)), flush=True)
    release_free_memory()
    for line in sys.stdin:
        if line.strip() != 'step':
            break
        print(MARK + json.dumps(dict(step_s=step())), flush=True)
        release_free_memory()  # an idle worker should not hold the other's memory
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == 'cuda' else
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(MARK + json.dumps(dict(peak_mib=peak)), flush=True)


def release_free_memory() -> None:
    """Return freed heap memory to the OS (glibc ``malloc_trim``; no-op elsewhere)."""
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reply(proc: subprocess.Popen) -> dict:
    """The worker's next result line (other output, e.g. MMEngine's logs, is skipped)."""
    for line in proc.stdout:
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f'benchmark worker {proc.args} died (exit {proc.wait()}); '
                       'out of memory?')


def time_training(configs: Dict[str, str], size: int, device: str, steps: int,
                  data_root: str) -> Dict[str, dict]:
    """Training step times (models alternated, one step each per round) and peak memory.

    One persistent worker process per model (so each has its own peak memory); workers are started
    and warmed up one after the other, then step in turn, so no two steps overlap.
    """
    procs, out = {}, {}
    for name, config in configs.items():
        procs[name] = subprocess.Popen(
            [sys.executable, __file__, '--worker', config, '--size', str(size), '--device',
             device, '--data-root', data_root], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)
        out[name] = dict(_reply(procs[name]), times=[])
    for _ in range(steps):
        for name, proc in procs.items():
            proc.stdin.write('step\n')
            proc.stdin.flush()
            out[name]['times'].append(_reply(proc)['step_s'])
    for name, proc in procs.items():
        proc.stdin.write('stop\n')
        proc.stdin.flush()
        out[name].update(_reply(proc))
        proc.wait()
    return out


def print_training_table(results: Dict[str, dict], size: int, device: str, steps: int) -> None:
    ref = statistics.median(results[REFERENCE]['times'])
    ref_mem = results[REFERENCE]['peak_mib']
    objects = next(iter(results.values()))['objects']
    counts = ' and '.join(map(str, objects))
    print(f'\n### Training step, 2 images {size}x{size} ({counts} objects), '
          f'device={device}, torch {torch.__version__}, threads={torch.get_num_threads()}\n')
    print('| model | params (M) | step median (s) | min / max (s) | time vs Mask2Former | '
          'peak memory (MiB) | memory vs Mask2Former |')
    print('|---|---|---|---|---|---|---|')
    for name, r in results.items():
        med = statistics.median(r['times'])
        print(f'| {name} | {r["params_m"]:.1f} | {med:.2f} | {min(r["times"]):.2f} / '
              f'{max(r["times"]):.2f} | {med / ref:.2f}x | {r["peak_mib"]:.0f} | '
              f'{r["peak_mib"] / ref_mem:.2f}x |')
    print(f'\nMedian of {steps} steps after 1 warm-up step, models alternated step by step, one '
          'process per model (peak memory = its peak RSS on CPU, max allocated on CUDA).')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=512, help='inference image size')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--train-sizes', type=int, nargs='*', default=[512, 1024],
                        help='training image sizes (none: skip training)')
    parser.add_argument('--train-steps', type=int, default=5)
    parser.add_argument('--skip-inference', action='store_true')
    parser.add_argument('--data-root', default='data/shapes_bench',
                        help='generated images go to DATA_ROOT_<size>')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return train_worker(args.worker, args.size, args.device, args.data_root)
    if not args.skip_inference:
        models = {k: build(c, args.device, args.size).eval() for k, c in MODELS_TO_COMPARE.items()}
        times = time_inference(models, args.size, args.device, args.warmup, args.repeats)
        del models
        print_inference_table(times, args)
    for size in args.train_sizes:
        results = time_training(TRAIN_MODELS, size, args.device, args.train_steps,
                                f'{args.data_root}_{size}')
        print_training_table(results, size, args.device, args.train_steps)


def print_inference_table(times: Dict[str, List[float]], args: argparse.Namespace) -> None:
    ref = statistics.median(times[REFERENCE])
    print(f'\n### Inference, {args.size}x{args.size}, device={args.device}, torch '
          f'{torch.__version__}, threads={torch.get_num_threads()}\n')
    print('| model | inference median (s) | min / max (s) | speed vs Mask2Former |')
    print('|---|---|---|---|')
    for name in MODELS_TO_COMPARE:
        med = statistics.median(times[name])
        print(f'| {name} | {med:.3f} | {min(times[name]):.3f} / {max(times[name]):.3f} | '
              f'{ref / med:.2f}x |')
    print(f'\n{args.repeats} timed runs after {args.warmup} warm-up, alternating models.')


if __name__ == '__main__':
    main()
