"""Evaluate a checkpoint with a plugin config.

Example::

    python tools/test.py configs/maskdino_r50.py work_dirs/maskdino_r50/iter_368750.pth
    python tools/test.py configs/maskdino_r50.py --onnx maskdino_r50.onnx   # ONNX Runtime
    python tools/test.py CONFIG CHECKPOINT --amp   # mixed precision: fp16 on a GPU, bf16 on a CPU
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
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint file (not with --onnx)')
    parser.add_argument('--onnx', help='evaluate this exported graph with ONNX Runtime '
                        '(tools/deployment/pytorch2onnx.py) instead of the PyTorch model')
    parser.add_argument('--amp', action='store_true',
                        help="mixed-precision inference (MMEngine's TestLoop(fp16=True): fp16 "
                             'autocast on a GPU, bf16 on a CPU); the pixel decoder and decoder '
                             'layers stay fp32')
    parser.add_argument('--work-dir', help='folder for the evaluation log')
    parser.add_argument('--out', help='dump predictions to this pickle file')
    parser.add_argument('--show-dir', help='draw predictions into this folder (under work-dir)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if (args.checkpoint is None) == (args.onnx is None):
        parser.error('give a checkpoint or --onnx FILE (one of them)')
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.amp:
        if args.onnx:
            raise SystemExit('--amp applies to the PyTorch model, not to --onnx')
        cfg.test_cfg.fp16 = True  # MMEngine's autocast: bf16 on a CPU
    if args.onnx:  # same data pipeline, preprocessor, fusion head and metrics
        cfg.model = dict(type='ONNXRuntimeMaskDINO', model_cfg=cfg.model, onnx_file=args.onnx)
    if args.show_dir:
        cfg.default_hooks.visualization.update(draw=True, test_out_dir=args.show_dir)
    if args.out:
        cfg.test_evaluator = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) \
            else [cfg.test_evaluator]
        cfg.test_evaluator.append(dict(type='DumpDetResults', out_file_path=args.out))
    init_cpu_distributed(cfg)  # gloo on CPU-only machines (mmengine assumes CUDA)
    try:
        runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
        runner.test()
    finally:
        close_distributed()  # a live gloo group can abort the interpreter's shutdown


if __name__ == '__main__':
    main()
