"""Speed benchmark: Mask DINO R50 vs mmdet's Mask2Former R50 (inference, training step, memory).

Inference (``--sizes``, e.g. 512x512 800x1333): the released Mask DINO R50 in PyTorch and in ONNX
Runtime (exported once, ``tools/deployment/pytorch2onnx.py``'s path), the ``_3s`` model and
mmdet's Mask2Former R50, random weights, the same image through each model's own preprocessing
and post-processing; one persistent worker process per model, stepping in turn (A, B, C, D, A,
...) after warm-up, so runs are side by side and each process has its own peak memory.
Training: 2 generated images with 10-30 objects each (``mmdet_maskdino.benchmarks.speed``), at
512 and 1024 (the LSJ size); the same worker scheme (A, B, A, B, ...). Peak memory is the
worker's peak RSS on CPU, ``max_memory_allocated`` on CUDA. Prints markdown tables.

``--bf16`` adds the released model under bf16 autocast (inference: the whole ``predict``; training:
the forward pass, the backward follows autocast's casts) as its own worker in the same rotation;
``--lean`` keeps only the released model (and its bf16 row) and Mask2Former.

Example::

    python tools/analysis_tools/benchmark_speed.py --sizes 512x512 800x1333 --train-sizes
    python tools/analysis_tools/benchmark_speed.py --skip-inference --train-sizes 512 1024
    python tools/analysis_tools/benchmark_speed.py --bf16 --lean --no-onnx
"""
import argparse
import ctypes
import json
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Tuple

import numpy as np
import torch

MODELS_TO_COMPARE = {
    'Mask DINO R50 (4 levels, enc FFN 2048)': 'configs/maskdino_r50.py',
    'Mask DINO R50-3s (3 levels, enc FFN 1024)': 'configs/maskdino/maskdino_r50-3s_8xb2-lsj-50e_coco.py',
    'Mask2Former R50 (mmdet)': 'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py',
}
REFERENCE = 'Mask2Former R50 (mmdet)'
ONNX_ROW = 'Mask DINO R50, ONNX Runtime'
INT8_ROW = 'Mask DINO R50, ONNX Runtime int8'
INT8_CONV_ROW = 'Mask DINO R50, ONNX Runtime int8 + int8 convolutions'
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


BF16 = '#bf16'  # a spec suffix: run the worker's step under bf16 autocast
BF16_ROW = 'Mask DINO R50, bf16 autocast'


def split_autocast(spec: str) -> Tuple[str, bool]:
    """``'config...#bf16'`` -> ``('config...', True)``; other specs -> ``(spec, False)``."""
    return (spec[:-len(BF16)], True) if spec.endswith(BF16) else (spec, False)


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


def make_batch(model, size, device: str, training: bool, seed: int = 0):
    """A batch of one generated image (``size``: int or ``(h, w)``) with 5 objects."""
    from mmdet_maskdino.testing import make_det_batch
    h, w = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(5):
        y, x = rng.integers(0, h - 100), rng.integers(0, w - 100)
        m = np.zeros((h, w), bool)
        m[y:y + 100, x:x + 80] = True
        masks.append(m)
    batch = make_det_batch(model, [masks], [[1, 2, 3, 4, 5]], image_size=(h, w),
                           seed=seed, training=training)
    batch['inputs'] = batch['inputs'].to(device)
    for s in batch['data_samples']:
        s.gt_instances = s.gt_instances.to(device)
    return batch


def parse_size(text: str) -> Tuple[int, int]:
    """``'800x1333'`` -> ``(800, 1333)`` (height x width)."""
    h, _, w = text.partition('x')
    return int(h), int(w or h)


def export_for_benchmark(config: str, out_file: str) -> str:
    """Export the (random-weight) model of ``config`` to ONNX in a subprocess (so that no worker's
    peak memory includes the export)."""
    subprocess.run([sys.executable, 'tools/deployment/pytorch2onnx.py', config, 'none', '--out',
                    out_file, '--shape', '512', '512'], check=True, stdout=subprocess.DEVNULL)
    return out_file


def quantize_for_benchmark(onnx_file: str, suffix: str, config: str, calib_images: int = 0,
                           data_root: str = '') -> str:
    """:func:`quantize_int8` of the benchmark graph in a subprocess (a worker's peak RSS counts its
    parent's at the time it is started), with ``calib_images`` generated images for the
    convolutions (0: they stay fp32)."""
    out_file = onnx_file.replace('.onnx', suffix)
    subprocess.run([sys.executable, __file__, '--quantize-worker', onnx_file, out_file, config,
                    '--int8-calib', str(calib_images), '--data-root', data_root], check=True,
                   stdout=subprocess.DEVNULL)
    return out_file


def quantize_worker(onnx_file: str, out_file: str, config: str, calib_images: int,
                    data_root: str) -> None:
    """Subprocess body of :func:`quantize_for_benchmark`."""
    from mmdet_maskdino.deployment import quantize_int8
    calibration = (bench_calibration(config, calib_images, data_root) if calib_images
                   else None)
    quantize_int8(onnx_file, out_file, calibration)


def infer_worker(spec: str, size: Tuple[int, int], device: str) -> None:
    """Subprocess body: build the model (``spec`` = config, or ``config@onnx_file`` for ONNX
    Runtime), then one timed ``predict`` per ``step`` line; ``stop`` prints the peak memory."""
    spec, bf16 = split_autocast(spec)
    config, _, onnx_file = spec.partition('@')
    torch.manual_seed(0)
    model = build(config, device, max(size)).eval()
    batch = make_batch(model, size, device, training=False)
    if onnx_file:
        from mmdet_maskdino.benchmarks.zoo import resolve_config
        from mmdet_maskdino.deployment import ONNXRuntimeMaskDINO
        from mmengine.config import Config
        cfg = Config.fromfile(resolve_config(config))
        del model
        model = ONNXRuntimeMaskDINO.from_config(cfg, onnx_file,
                                                num_threads=torch.get_num_threads())

    def step() -> float:
        if device == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            model.predict(batch['inputs'], batch['data_samples'])
        if device == 'cuda':
            torch.cuda.synchronize()
        return time.perf_counter() - start

    serve(step, device)


def serve(step, device: str, **ready) -> None:
    """Worker loop: report ready, run ``step`` per ``step`` line, report peak memory at the end."""
    import resource
    print(MARK + json.dumps(dict(ready=True, **ready)), flush=True)
    release_free_memory()
    for line in sys.stdin:
        if line.strip() != 'step':
            break
        print(MARK + json.dumps(dict(step_s=step())), flush=True)
        release_free_memory()  # an idle worker should not hold the other's memory
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == 'cuda' else
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(MARK + json.dumps(dict(peak_mib=peak)), flush=True)


def train_worker(config: str, size: int, device: str, data_root: str) -> None:
    """Subprocess body: build ``config``, one warm-up step, then one timed training step per
    ``step`` line read from stdin (a json line each); ``stop`` prints the peak memory and exits."""
    from mmdet_maskdino.benchmarks.speed import crowded_images, training_batch
    config, bf16 = split_autocast(config)
    torch.manual_seed(0)
    model = build(config, device, size).train()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images = crowded_images(data_root, size)
    batch = training_batch(model, images, device)

    def step() -> float:
        if device == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            losses = model(**batch, mode='loss')
        total = sum(v for k, v in losses.items() if 'loss' in k)
        optim.zero_grad()
        total.backward()
        optim.step()
        if device == 'cuda':
            torch.cuda.synchronize()
        return time.perf_counter() - start

    step()  # warm-up
    serve(step, device, objects=[len(i.labels) for i in images],
          params_m=sum(p.numel() for p in model.parameters()) / 1e6)


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
    """Training step times (models alternated, one step each per round) and peak memory."""
    return run_workers({name: ['--worker', config, '--size', str(size), '--device', device,
                               '--data-root', data_root] for name, config in configs.items()},
                       steps)


def time_inference(specs: Dict[str, str], size: Tuple[int, int], device: str, warmup: int,
                   repeats: int) -> Dict[str, dict]:
    """Inference times (models alternated) and peak memory; the warm-up runs are dropped."""
    out = run_workers({name: ['--infer-worker', spec, '--size', f'{size[0]}x{size[1]}',
                              '--device', device] for name, spec in specs.items()},
                      warmup + repeats)
    for r in out.values():
        r['times'] = r['times'][warmup:]
    return out


def run_workers(worker_args: Dict[str, List[str]], steps: int) -> Dict[str, dict]:
    """One persistent worker process per entry (so each has its own peak memory); workers are
    started one after the other, then step in turn, so no two steps overlap."""
    procs, out = {}, {}
    for name, args in worker_args.items():
        procs[name] = subprocess.Popen([sys.executable, __file__, *args],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
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


def summarise(results: Dict[str, dict]) -> List[tuple]:
    """Per model: ``(name, result, median time, Mask2Former's median time, memory ratio)``."""
    ref = statistics.median(results[REFERENCE]['times'])
    ref_mem = results[REFERENCE]['peak_mib']
    return [(name, r, statistics.median(r['times']), ref, r['peak_mib'] / ref_mem)
            for name, r in results.items()]


def print_training_table(results: Dict[str, dict], size: int, device: str, steps: int) -> None:
    objects = next(iter(results.values()))['objects']
    counts = ' and '.join(map(str, objects))
    print(f'\n### Training step, 2 images {size}x{size} ({counts} objects), '
          f'device={device}, torch {torch.__version__}, threads={torch.get_num_threads()}\n')
    print('| model | params (M) | step median (s) | min / max (s) | time vs Mask2Former | '
          'peak memory (MiB) | memory vs Mask2Former |')
    print('|---|---|---|---|---|---|---|')
    for name, r, med, ref, mem in summarise(results):
        print(f'| {name} | {r["params_m"]:.1f} | {med:.2f} | {min(r["times"]):.2f} / '
              f'{max(r["times"]):.2f} | {med / ref:.2f}x | {r["peak_mib"]:.0f} | {mem:.2f}x |')
    print(f'\nMedian of {steps} steps after 1 warm-up step, models alternated step by step, one '
          'process per model (peak memory = its peak RSS on CPU, max allocated on CUDA).')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', nargs='*', default=['512x512', '800x1333'],
                        help='inference sizes HxW')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--no-onnx', action='store_true', help='skip the ONNX Runtime row')
    parser.add_argument('--int8', action='store_true',
                        help='add the ONNX Runtime row of the int8 graph (quantize_int8)')
    parser.add_argument('--int8-calib', type=int, default=0, metavar='N',
                        help='add the ONNX Runtime row of the int8 graph with int8 convolutions '
                        'too, calibrated on N generated training images (random weights: for '
                        'speed only)')
    parser.add_argument('--train-sizes', type=int, nargs='*', default=[512, 1024],
                        help='training image sizes (none: skip training)')
    parser.add_argument('--train-steps', type=int, default=5)
    parser.add_argument('--skip-inference', action='store_true')
    parser.add_argument('--data-root', default='data/shapes_bench',
                        help='generated images go to DATA_ROOT_<size>')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--bf16', action='store_true',
                        help='add the released model under bf16 autocast')
    parser.add_argument('--lean', action='store_true',
                        help='only the released model (and its bf16 row) and Mask2Former')
    parser.add_argument('--variant', action='append', default=[], metavar='NAME:KEY=VALUE,...',
                        help='an extra training row: the released model with these config '
                        'options (e.g. "upstream draws:model.train_cfg.share_points=False"), '
                        'to measure one change on its own in the same run')
    parser.add_argument('--size', help=argparse.SUPPRESS)  # a worker's size
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    parser.add_argument('--infer-worker', help=argparse.SUPPRESS)
    parser.add_argument('--quantize-worker', nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quantize_worker:
        return quantize_worker(*args.quantize_worker, args.int8_calib, args.data_root)
    if args.worker:
        return train_worker(args.worker, int(args.size), args.device, args.data_root)
    if args.infer_worker:
        return infer_worker(args.infer_worker, parse_size(args.size), args.device)
    train_models = dict(TRAIN_MODELS)
    if not args.skip_inference:
        specs = dict(MODELS_TO_COMPARE)
        if not args.no_onnx and args.device == 'cpu':
            import tempfile
            onnx_file = export_for_benchmark(MODELS_TO_COMPARE[RELEASED],
                                             osp.join(tempfile.mkdtemp(), 'maskdino_r50.onnx'))
            onnx_rows = {ONNX_ROW: f'{specs[RELEASED]}@{onnx_file}'}
            if args.int8:
                int8_file = quantize_for_benchmark(onnx_file, '_int8.onnx', specs[RELEASED])
                onnx_rows[INT8_ROW] = f'{specs[RELEASED]}@{int8_file}'
            if args.int8_calib:
                conv_file = quantize_for_benchmark(onnx_file, '_int8_conv.onnx', specs[RELEASED],
                                                   args.int8_calib, args.data_root)
                onnx_rows[INT8_CONV_ROW] = f'{specs[RELEASED]}@{conv_file}'
            specs = {RELEASED: specs[RELEASED], **onnx_rows,
                     **{k: v for k, v in specs.items() if k != RELEASED}}
        specs = with_rows(specs, args)
        for size in map(parse_size, args.sizes):
            results = time_inference(specs, size, args.device, args.warmup, args.repeats)
            print_inference_table(results, size, args)
    train_models = with_rows(train_models, args)
    train_models = with_variants(train_models, args.variant)
    for size in args.train_sizes:
        results = time_training(train_models, size, args.device, args.train_steps,
                                f'{args.data_root}_{size}')
        print_training_table(results, size, args.device, args.train_steps)


def with_variants(models: Dict[str, str], variants: List[str]) -> Dict[str, str]:
    """``models`` with a row per ``'NAME:KEY=VALUE,...'`` variant of the released model, after it
    (config options added to its own)."""
    out = {}
    for name, spec in models.items():
        out[name] = spec
        if name != RELEASED:
            continue
        for variant in variants:
            label, sep, options = variant.partition(':')
            if not sep or '=' not in options:
                raise SystemExit(f'--variant {variant!r}: expected NAME:KEY=VALUE,...')
            config, _, own = spec.partition('|')
            out[f'Mask DINO R50, {label}'] = f'{config}|{",".join(filter(None, (own, options)))}'
    return out


def bench_calibration(config: str, num_images: int, data_root: str):
    """Calibration inputs for the int8 convolutions of the random-weight benchmark graph:
    ``num_images`` generated 512x512 training images (the training benchmark's split) through the
    config's test pipeline and data preprocessor."""
    from mmengine.config import Config

    from mmdet_maskdino.benchmarks.speed import crowded_images
    from mmdet_maskdino.deployment import calibration_inputs
    root = f'{data_root}_512/'
    crowded_images(root, 512)  # generates the split once
    dataset = dict(type='CocoDataset', data_root=root, ann_file='annotations/instances_train.json',
                   data_prefix=dict(img='train/'), test_mode=True)
    return list(calibration_inputs(Config.fromfile(config), num_images, dataset=dataset))


def with_rows(models: Dict[str, str], args: argparse.Namespace) -> Dict[str, str]:
    """``models`` with the bf16 row after the released model (``--bf16``), and only the released
    model, its bf16 and ONNX Runtime rows and Mask2Former with ``--lean``."""
    out = {}
    for name, spec in models.items():
        if args.lean and name not in (RELEASED, REFERENCE, ONNX_ROW, INT8_ROW, INT8_CONV_ROW):
            continue
        out[name] = spec
        if name == RELEASED and args.bf16:
            out[BF16_ROW] = spec + BF16
    return out


def print_inference_table(results: Dict[str, dict], size: Tuple[int, int],
                          args: argparse.Namespace) -> None:
    print(f'\n### Inference, {size[0]}x{size[1]}, device={args.device}, torch '
          f'{torch.__version__}, threads={torch.get_num_threads()}\n')
    print('| model | inference median (s) | min / max (s) | speed vs Mask2Former | '
          'peak memory (MiB) | memory vs Mask2Former |')
    print('|---|---|---|---|---|---|')
    for name, r, med, ref, mem in summarise(results):
        print(f'| {name} | {med:.3f} | {min(r["times"]):.3f} / {max(r["times"]):.3f} | '
              f'{ref / med:.2f}x | {r["peak_mib"]:.0f} | {mem:.2f}x |')
    print(f'\n{args.repeats} timed runs after {args.warmup} warm-up, models alternated run by '
          'run, one process per model (peak memory = its peak RSS on CPU, max allocated on '
          'CUDA), preprocessed image in, post-processed data sample out.')


if __name__ == '__main__':
    main()
