"""Train a detector with a plugin config (the plugin is imported through the config's custom_imports).

Example::

    python tools/train.py configs/maskdino_r50.py --work-dir work_dirs/maskdino_r50
"""
import argparse
import os
import os.path as osp
import sys

# the repository root, so that configs of projects/ can import their code (custom_imports)
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmdet_maskdino.utils import close_distributed, init_cpu_distributed  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='folder for logs and checkpoints')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: fp16 autocast + loss scaling on a GPU, bf16 '
                             'autocast on a CPU (CPUCapableAmpOptimWrapper)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from a checkpoint; without a path, from the latest in work-dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_cfg.max_iters=10')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_cfg(args: argparse.Namespace) -> Config:
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        # MMEngine's AmpOptimWrapper on an accelerator, bf16 autocast on a CPU
        cfg.optim_wrapper.type = 'CPUCapableAmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def main() -> None:
    cfg = build_cfg(parse_args())
    init_cpu_distributed(cfg)  # gloo on CPU-only machines (mmengine assumes CUDA)
    try:
        runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
        runner.train()
    finally:
        close_distributed()  # a live gloo group can abort the interpreter's shutdown


if __name__ == '__main__':
    main()
