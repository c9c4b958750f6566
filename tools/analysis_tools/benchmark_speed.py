"""Speed benchmark: Mask DINO R50 vs mmdet's Mask2Former R50 (inference, training step, memory).

Inference: both models in this process, on the same 512x512 image, timed alternately (A, B, A, B, ...)
after warm-up; the table reports medians and the ratio. Training step time and peak memory are measured
in a fresh subprocess per model (peak RSS on CPU, ``max_memory_allocated`` on CUDA). Prints markdown.

Example::

    python tools/analysis_tools/benchmark_speed.py --repeats 7 --train-steps 3
"""
import argparse
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


def build(config: str, device: str, size: int):
    """Model from a config, random weights (no download), BatchFixedSizePad set to ``size``."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmdet_maskdino  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet_maskdino.benchmarks.zoo import resolve_config
    cfg = Config.fromfile(resolve_config(config))  # mmdet::x.py: a config shipped in mmdet
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


def train_worker(config: str, size: int, device: str, steps: int) -> None:
    """Subprocess body: time ``steps`` training steps after one warm-up, print a json line."""
    import resource
    torch.manual_seed(0)
    model = build(config, device, size).train()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = make_batch(model, size, device, training=True)
    times = []
    for i in range(steps + 1):
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
        if i > 0:
            times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == 'cuda' else
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(dict(step_s=statistics.median(times), peak_mib=peak,
                          params_m=sum(p.numel() for p in model.parameters()) / 1e6)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=512)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--train-steps', type=int, default=3)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return train_worker(args.worker, args.size, args.device, args.train_steps)

    models = {k: build(c, args.device, args.size).eval() for k, c in MODELS_TO_COMPARE.items()}
    times = time_inference(models, args.size, args.device, args.warmup, args.repeats)
    del models
    train = {}
    for name, config in MODELS_TO_COMPARE.items():
        out = subprocess.run([sys.executable, __file__, '--worker', config, '--size',
                              str(args.size), '--device', args.device, '--train-steps',
                              str(args.train_steps)], capture_output=True, text=True, check=True)
        train[name] = json.loads(out.stdout.strip().splitlines()[-1])
    ref = statistics.median(times[REFERENCE])
    print(f'\n### Speed, {args.size}x{args.size}, device={args.device}, torch '
          f'{torch.__version__}, threads={torch.get_num_threads()}\n')
    print('| model | params (M) | inference median (s) | min / max (s) | speed vs Mask2Former | '
          'train step median (s) | peak memory (MiB) |')
    print('|---|---|---|---|---|---|---|')
    for name in MODELS_TO_COMPARE:
        med = statistics.median(times[name])
        print(f'| {name} | {train[name]["params_m"]:.1f} | {med:.3f} | {min(times[name]):.3f} / '
              f'{max(times[name]):.3f} | {ref / med:.2f}x | {train[name]["step_s"]:.3f} | '
              f'{train[name]["peak_mib"]:.0f} |')
    print(f'\n{args.repeats} timed runs after {args.warmup} warm-up, alternating models; '
          f'training: median of {args.train_steps} steps (batch 1, 5 objects) after 1 warm-up, '
          'in a fresh process per model.')


if __name__ == '__main__':
    main()
