"""Predict images with ``mmdet.apis.DetInferencer`` and draw them with mmdet's DetLocalVisualizer.

Example::

    python tools/demo/draw_predictions.py configs/demo/maskdino_r18_shapes.py \
        work_dirs/demo/iter_300.pth data/shapes/val/000065.jpg --out-dir work_dirs/demo/vis
"""
import argparse
import os
import os.path as osp

import mmcv

from mmdet.apis import DetInferencer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('images', nargs='+', help='image files')
    parser.add_argument('--out-dir', default='work_dirs/vis')
    parser.add_argument('--score-thr', type=float, default=0.3)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()

    inferencer = DetInferencer(model=args.config, weights=args.checkpoint, device=args.device,
                               show_progress=False)
    results = inferencer(args.images, return_datasamples=True, no_save_vis=True)
    os.makedirs(args.out_dir, exist_ok=True)
    for image, sample in zip(args.images, results['predictions']):
        pred = sample.pred_instances
        kept = int((pred.scores >= args.score_thr).sum())
        out_file = osp.join(args.out_dir, osp.splitext(osp.basename(image))[0] + '.png')
        # inferencer.visualizer is mmdet's DetLocalVisualizer, with the dataset's class names
        inferencer.visualizer.add_datasample(
            osp.basename(image), mmcv.imread(image, channel_order='rgb'), sample, draw_gt=False,
            pred_score_thr=args.score_thr, out_file=out_file)
        best = f', best score {pred.scores.max():.2f}' if len(pred) else ''
        print(f'{image}: {kept} instances with score >= {args.score_thr}{best} -> {out_file}')


if __name__ == '__main__':
    main()
