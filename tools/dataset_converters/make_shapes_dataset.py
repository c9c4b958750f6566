"""Generate the synthetic shapes dataset (COCO instance + panoptic + semantic, train/val).

Example::

    python tools/dataset_converters/make_shapes_dataset.py data/shapes --num-train 64 --num-val 16
"""
import argparse
import time

from mmdet_maskdino.datasets import ShapesSpec, dataset_is_current, generate_shapes_dataset


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', help='output folder (created)')
    parser.add_argument('--num-train', type=int, default=64)
    parser.add_argument('--num-val', type=int, default=16)
    parser.add_argument('--size', type=int, nargs=2, default=(128, 128), metavar=('H', 'W'))
    parser.add_argument('--max-objects', type=int, default=5)
    parser.add_argument('--empty-ratio', type=float, default=0.1)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true', help='regenerate even if up to date')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    spec = ShapesSpec(num_train=args.num_train, num_val=args.num_val, img_size=tuple(args.size),
                      max_objects=args.max_objects, empty_ratio=args.empty_ratio, seed=args.seed)
    if not args.force and dataset_is_current(args.out_dir, spec):
        print(f'{args.out_dir} is up to date ({spec})')
        return
    start = time.time()
    counts = generate_shapes_dataset(args.out_dir, spec)
    print(f'wrote {args.out_dir} in {time.time() - start:.1f}s: {counts}')


if __name__ == '__main__':
    main()
