"""Predict images with ``mmdet.apis.DetInferencer`` and draw them with mmdet's DetLocalVisualizer.

Example::

    python tools/demo/draw_predictions.py configs/demo/maskdino_r18_shapes.py \
        work_dirs/demo/iter_300.pth data/shapes/val/000065.jpg --out-dir work_dirs/demo/vis
"""
import argparse
import glob
import os.path as osp

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
    results = inferencer(args.images, out_dir=args.out_dir, pred_score_thr=args.score_thr,
                         no_save_pred=False)
    for image, pred in zip(args.images, results['predictions']):
        kept = [s for s in pred['scores'] if s >= args.score_thr]
        print(f'{image}: {len(kept)} instances with score >= {args.score_thr}')
    drawn = sorted(glob.glob(osp.join(args.out_dir, 'vis', '*')))
    print('drawn with DetLocalVisualizer:', ', '.join(drawn))


if __name__ == '__main__':
    main()
