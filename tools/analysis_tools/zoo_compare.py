"""Model-zoo comparison in one command: Mask DINO vs mmdet's Mask R-CNN, Mask2Former and DINO.

Every model is trained (or loaded from ``--models NAME=CONFIG=CHECKPOINT``) under one protocol --
same dataset, image size, batch, iterations, lr schedule shape and seed; each keeps its own
architecture and optimiser -- evaluated with the same ``CocoMetric`` every ``--val-interval``
iterations, then measured in a fresh process: inference latency (median of ``--repeats`` after
``--warmup``), training step time, peak memory (CPU RSS, or CUDA max allocated), parameters and
FLOPs. Writes ``table.md``, ``ap_vs_iter.png`` and ``cost.png`` to ``--work-dir`` and prints the
table. Run it again with the same options to resume an interrupted comparison (finished stages are
kept in ``state.json``; an interrupted training resumes from its last checkpoint).

Example (a quick look; generates the shapes dataset first; docs/model_zoo.md has the command of the
README's table)::

    python tools/analysis_tools/zoo_compare.py --iters 300 --val-interval 100
"""
import argparse
import os
import os.path as osp
import re
import subprocess
import sys
import time

from mmengine.logging import MMLogger
from mmengine.utils import ProgressBar

from mmdet_maskdino.benchmarks.zoo import (ZooEntry, ZooSpec, ZooState, backbone_name,
                                           markdown_table, measure_in_subprocess, plot,
                                           prepare_config, read_curve)

DEFAULT_MODELS = [
    'Mask DINO=configs/demo/maskdino_r18_shapes.py',
    'Mask2Former=configs/demo/mask2former_r18_shapes.py',
    'Mask R-CNN=configs/zoo/mask-rcnn_r18_fpn_shapes.py',
    'DINO=configs/zoo/dino-4scale_r18_shapes.py',
]
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_entry(text: str) -> ZooEntry:
    parts = text.split('=')
    if len(parts) not in (2, 3) or not all(parts):
        raise argparse.ArgumentTypeError(f'expected NAME=CONFIG or NAME=CONFIG=CHECKPOINT, got '
                                         f'{text!r}')
    return ZooEntry(*parts)


def slug(name: str) -> str:
    return re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')


def run_tool(args: list, log_path: str) -> None:
    """Run one of our tools with its output in ``log_path``; fail with the log's tail."""
    with open(log_path, 'a') as log:
        proc = subprocess.run([sys.executable, *args], stdout=log, stderr=subprocess.STDOUT,
                              cwd=REPO, env=dict(os.environ, PYTHONWARNINGS='ignore'))
    if proc.returncode != 0:
        with open(log_path) as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f'{" ".join(args[:2])} failed (exit {proc.returncode}); log '
                           f'{log_path}:\n{tail}')


def train_or_evaluate(entry: ZooEntry, spec: ZooSpec, config_path: str, model_dir: str,
                      rec: dict) -> None:
    """Stage 1: train (resuming from the last checkpoint), or evaluate a given checkpoint."""
    log = osp.join(model_dir, 'run.log')
    start = time.time()
    if entry.checkpoint:
        run_tool(['tools/test.py', config_path, entry.checkpoint, '--work-dir', model_dir], log)
        rec['checkpoint'] = entry.checkpoint
        metrics = _test_metrics(model_dir)
        rec['curve'] = [dict(iter=None, **metrics)]
    else:
        resume = ['--resume'] if osp.isfile(osp.join(model_dir, 'last_checkpoint')) else []
        run_tool(['tools/train.py', config_path, '--work-dir', model_dir, *resume], log)
        rec['checkpoint'] = osp.join(model_dir, f'iter_{spec.iters}.pth')
        rec['curve'] = read_curve(model_dir, spec.val_interval, spec.iters)
    rec['train_s'] = time.time() - start + rec.get('train_s', 0.0)


def _test_metrics(model_dir: str) -> dict:
    import glob
    import json

    from mmdet_maskdino.benchmarks.zoo import AP_KEYS
    (path, ) = sorted(glob.glob(osp.join(model_dir, '*', '*.json')))[-1:]
    with open(path) as f:
        metrics = json.load(f)
    return {n: metrics.get(k) for n, k in AP_KEYS.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', type=parse_entry,
                        default=[parse_entry(m) for m in DEFAULT_MODELS],
                        help='NAME=CONFIG[=CHECKPOINT]; CONFIG may be mmdet::path.py')
    parser.add_argument('--data-root', default='data/shapes/',
                        help='generated with make_shapes_dataset.py when missing')
    parser.add_argument('--image-size', type=int, default=128)
    parser.add_argument('--iters', type=int, default=300)
    parser.add_argument('--val-interval', type=int, default=100)
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--warmup-iters', type=int, default=20)
    parser.add_argument('--device', default=None, help='cpu or cuda (default: cuda if present)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed inference runs')
    parser.add_argument('--repeats', type=int, default=5, help='timed inference runs')
    parser.add_argument('--train-steps', type=int, default=3, help='timed training steps')
    parser.add_argument('--work-dir', default='work_dirs/zoo_compare')
    args = parser.parse_args()

    import torch
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    os.makedirs(args.work_dir, exist_ok=True)
    logger = MMLogger.get_instance('zoo_compare', log_file=osp.join(args.work_dir, 'zoo.log'))
    if not osp.isfile(osp.join(args.data_root, 'annotations', 'instances_val.json')):
        logger.info(f'generating the shapes dataset in {args.data_root}')
        subprocess.run([sys.executable, osp.join(REPO, 'tools/dataset_converters/'
                                                 'make_shapes_dataset.py'), args.data_root],
                       check=True)
    spec = ZooSpec(data_root=osp.abspath(args.data_root), image_size=args.image_size,
                   iters=args.iters, val_interval=args.val_interval, batch_size=args.batch_size,
                   seed=args.seed, warmup=args.warmup_iters)
    state = ZooState.load(args.work_dir, spec)
    logger.info(f'comparing {[e.name for e in args.models]} on {spec}; state {state.path}')

    bar = ProgressBar(2 * len(args.models))
    for entry in args.models:
        model_dir = osp.abspath(osp.join(args.work_dir, slug(entry.name)))
        os.makedirs(model_dir, exist_ok=True)
        rec = state.models.setdefault(entry.name, dict(config=entry.config))
        if rec['config'] != entry.config:
            raise ValueError(f'{entry.name!r} was {rec["config"]} in {state.path}, now '
                             f'{entry.config}: use another name or --work-dir')
        config_path = osp.join(model_dir, 'config.py')
        cfg = prepare_config(entry.config, spec)
        cfg.dump(config_path)
        rec['backbone'] = backbone_name(cfg)
        if 'curve' not in rec:
            logger.info(f'[{entry.name}] training / evaluating, log in {model_dir}/run.log')
            train_or_evaluate(entry, spec, config_path, model_dir, rec)
            state.save()
        bar.update()
        if 'measure' not in rec:
            logger.info(f'[{entry.name}] measuring latency, training step, memory, FLOPs')
            rec['measure'] = measure_in_subprocess(config_path, rec['checkpoint'], device,
                                                   args.warmup, args.repeats, args.train_steps)
            state.save()
        bar.update()

    backbones = {rec['backbone'] for rec in state.models.values()}
    if len(backbones) > 1:
        logger.warning(f'the models do not share one backbone: {sorted(backbones)}')
    table = markdown_table(state)
    header = (f'Shapes dataset ({spec.data_root}), {spec.image_size}px, batch {spec.batch_size}, '
              f'{spec.iters} iterations, seed {spec.seed}, device {device}; latency: median of '
              f'{args.repeats} after {args.warmup} warm-up, 1 image; train step: median of '
              f'{args.train_steps}; AP at the last evaluation; FLOPs by mmengine\'s FlopAnalyzer '
              '(mmcv\'s deformable attention and other custom ops not counted).')
    with open(osp.join(args.work_dir, 'table.md'), 'w') as f:
        f.write(header + '\n\n' + table + '\n')
    paths = plot(state, args.work_dir)
    print('\n' + header + '\n\n' + table)
    print('\nwrote ' + ', '.join([osp.join(args.work_dir, 'table.md'), *paths]))


if __name__ == '__main__':
    main()
