"""Export a Mask DINO checkpoint to ONNX (backbone + head; post-processing stays in Python).

The graph takes a preprocessed batch of any size (``inputs`` (bs, 3, H, W), normalised and
padded as the config's data preprocessor does) and returns the last decoder layer's
``cls_logits`` (bs, Q, C), ``boxes`` (bs, Q, 4) and ``mask_logits`` (bs, Q, H/4, W/4). Run it with
:class:`mmdet_maskdino.deployment.ONNXRuntimeMaskDINO` (same ``DetDataSample``s as the PyTorch
model) or ``tools/test.py CONFIG --onnx FILE``.

Example::

    python tools/deployment/pytorch2onnx.py configs/maskdino_r50.py maskdino_r50.pth \\
        --out maskdino_r50.onnx --verify [--int8 maskdino_r50_int8.onnx [--calib-images 16]]

``--int8 FILE`` also writes a copy with int8 weights in every ``nn.Linear`` (ONNX Runtime's
dynamic quantisation); with ``--calib-images N`` its convolutions are int8 too (static
quantisation, activation ranges from N images of the config's training set). See
:mod:`mmdet_maskdino.deployment.quantize` for what stays fp32.
"""
import argparse
import logging
import sys
import time

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger, print_log
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

import mmdet_maskdino  # noqa: F401
from mmdet.registry import MODELS
from mmdet_maskdino.deployment import (ONNXRuntimeMaskDINO, calibration_inputs, export_onnx,
                                       quantize_int8)
from mmdet_maskdino.deployment.onnx import DEFORM_ATTN_IMPLS


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', help="weights ('none': random weights, for testing)")
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1344], metavar=('H', 'W'),
                        help='example input size used for tracing (the graph takes any size)')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--deform-attn', choices=DEFORM_ATTN_IMPLS, default='grid_sample',
                        help="deformable attention as mmcv's GridSample formulation (default) or "
                        'as Gather + MatMul per bilinear corner')
    parser.add_argument('--verify', action='store_true',
                        help='run the file with ONNX Runtime on two other sizes and report the '
                        'largest difference from PyTorch')
    parser.add_argument('--int8', metavar='FILE',
                        help='also write an int8 copy (dynamic quantisation of the weight '
                        'MatMul / Gemm nodes) to FILE')
    parser.add_argument('--calib-images', type=int, default=0, metavar='N',
                        help='with --int8: also quantise the convolutions statically, with '
                        'activation ranges from N training images of the config (its test '
                        'pipeline); 0 (default): convolutions stay fp32')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    if args.calib_images and not args.int8:
        parser.error('--calib-images calibrates the int8 copy: give --int8 FILE too')
    if args.calib_images < 0:
        parser.error(f'--calib-images must be >= 0, got {args.calib_images}')
    return args


def verify(model, cfg, onnx_file: str, shape) -> float:
    """Largest absolute difference of the raw outputs at two sizes other than the traced one."""
    runner = ONNXRuntimeMaskDINO.from_config(cfg, onnx_file)
    h, w = shape
    worst = 0.0
    for size in ((h // 2 // 32 * 32 + 32, w // 32 * 32), (h // 32 * 32, w // 2 // 32 * 32 + 32)):
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            cls, masks, boxes = model.panoptic_head.predict(model.extract_feat(x), None)
        ours = runner.forward_raw(x)
        diffs = [float((a - b).abs().max()) for a, b in zip(ours, (cls, boxes, masks))]
        print_log(f'{size[0]}x{size[1]}: max |ONNX - PyTorch| cls_logits {diffs[0]:.2e}, '
                  f'boxes {diffs[1]:.2e}, mask_logits {diffs[2]:.2e} (queries whose selection '
                  'scores tie may be listed in another order)', logger='current')
        worst = max(worst, *diffs)
    return worst


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope('mmdet')
    MMLogger.get_current_instance().setLevel(logging.WARNING)  # silence init_weights' report
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    model.init_weights()
    MMLogger.get_current_instance().setLevel(logging.INFO)
    if args.checkpoint != 'none':
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.eval()
    start = time.perf_counter()
    export_onnx(model, args.out, shape=tuple(args.shape), opset=args.opset,
                deform_attn=args.deform_attn)
    print_log(f'wrote {args.out} ({time.perf_counter() - start:.1f} s)', logger='current')
    if args.verify:
        verify(model, cfg, args.out, args.shape)
    if args.int8:
        calibration = (calibration_inputs(cfg, args.calib_images) if args.calib_images
                       else None)
        report = quantize_int8(args.out, args.int8, calibration)
        convs = (f'{len(report.convs)} Conv nodes int8 (ranges from '
                 f'{report.calibration_images} training images)' if report.convs
                 else 'convolutions fp32')
        print_log(f'wrote {args.int8}: int8 weights in {len(report.quantised)} MatMul / Gemm '
                  f'nodes; {len(report.kept_fp32)} products of two activations kept fp32; '
                  f'{convs}', logger='current')
        if args.verify:
            verify(model, cfg, args.int8, args.shape)
    return 0


if __name__ == '__main__':
    sys.exit(main())
