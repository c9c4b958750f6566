"""Memorisation run on real COCO images: train the panoptic Mask DINO on a few coco128 images and
evaluate on the same images (PQ, box/mask AP, mIoU): one model, three tasks.

A pipeline check on real data (133 COCO panoptic classes, real panoptic PNGs, mmdet's
``CocoPanopticDataset`` / ``CocoPanopticMetric`` / ``CocoMetric`` / ``SemSegMetric``): the numbers
should climb far above chance. The model is the CPU demo model (ResNet-18 from scratch, 64
channels, 2 encoder / 3 decoder layers) of ``configs/demo/maskdino_r18_shapes-panoptic.py`` with
COCO's 80 things + 53 stuff, images resized to ``--image-size`` without augmentation.

Example::

    python tools/analysis_tools/memorise_coco128.py --num-images 8 --iters 600 --val-interval 200
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Optional

from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmdet_maskdino  # noqa: F401
from mmdet.registry import DATASETS
from mmdet_maskdino.benchmarks.zoo import read_curve

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_DATA = osp.join(REPO, '..', 'shared', 'data', 'coco128')
METRICS = [('PQ', 'coco_panoptic/PQ'), ('PQ_th', 'coco_panoptic/PQ_th'),
           ('PQ_st', 'coco_panoptic/PQ_st'), ('box AP', 'coco/bbox_mAP'),
           ('mask AP', 'coco/segm_mAP'), ('mIoU', 'mIoU')]


def subset_instances_json(src: str, dst: str, img_ids: list) -> str:
    """Write the COCO instance annotations of ``img_ids`` only: mmdet's ``CocoMetric`` evaluates
    every image of its ``ann_file``, so a subset run needs a subset file."""
    with open(src) as f:
        data = json.load(f)
    keep = set(img_ids)
    data['images'] = [im for im in data['images'] if im['id'] in keep]
    data['annotations'] = [a for a in data['annotations'] if a['image_id'] in keep]
    os.makedirs(osp.dirname(dst), exist_ok=True)
    with open(dst, 'w') as f:
        json.dump(data, f)
    return dst


def build_config(data_root: str, num_images: int, iters: int, val_interval: int,
                 image_size: int, queries: int, lr: float,
                 instances_json: Optional[str] = None) -> Config:
    """The panoptic demo config retargeted to ``num_images`` coco128 images (train = val).

    ``instances_json``: the instance annotations ``CocoMetric`` reads (default: coco128's, all
    100 images; pass a :func:`subset_instances_json` file for correct AP on a subset).
    """
    cfg = Config.fromfile(osp.join(REPO, 'configs/demo/maskdino_r18_shapes-panoptic.py'))
    size = (image_size, image_size)
    things, stuff = 80, 53
    cfg.model.data_preprocessor.batch_augments[0].size = size
    cfg.model.panoptic_head.update(num_things_classes=things, num_stuff_classes=stuff,
                                   num_queries=queries)
    cfg.model.panoptic_fusion_head.update(num_things_classes=things, num_stuff_classes=stuff)
    cfg.model.test_cfg.max_per_image = 100
    ann = osp.join(data_root, 'annotations')
    common = dict(
        type='CocoPanopticDataset', data_root=data_root,
        ann_file='annotations/panoptic_train2017.json',
        data_prefix=dict(img='train2017/', seg='annotations/panoptic_train2017/'),
        indices=num_images, filter_cfg=None, metainfo=None)
    # the demo config's pipelines at this size, without augmentation (train = eval images)
    train_pipeline = [t for t in cfg.train_dataloader.dataset.pipeline if t.type != 'RandomFlip']
    test_pipeline = cfg.val_dataloader.dataset.pipeline
    for transform in train_pipeline + test_pipeline:
        if transform.type == 'Resize':
            transform.scale = size
    # the checked dataset records iscrowd, which the train pipeline's LoadPanopticSegments needs
    cfg.train_dataloader.dataset = dict(common, type='CheckedCocoPanopticDataset',
                                        pipeline=train_pipeline)
    cfg.train_dataloader.batch_size = min(4, num_images)
    cfg.val_dataloader.dataset = dict(common, pipeline=test_pipeline, test_mode=True)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_evaluator = [
        dict(type='CocoPanopticMetric', ann_file=osp.join(ann, 'panoptic_train2017.json'),
             seg_prefix=osp.join(ann, 'panoptic_train2017/')),
        dict(type='CocoMetric',
             ann_file=instances_json or osp.join(ann, 'instances_train2017.json'),
             metric=['bbox', 'segm']),
        dict(type='SemSegMetric', iou_metrics=['mIoU'])
    ]
    cfg.test_evaluator = cfg.val_evaluator
    cfg.optim_wrapper.optimizer.lr = lr
    cfg.train_cfg.update(max_iters=iters, val_interval=val_interval)
    cfg.param_scheduler.update(end=iters, milestones=[int(iters * 0.9)])
    cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.logger.interval = 50
    return cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-root', default=DEFAULT_DATA)
    parser.add_argument('--num-images', type=int, default=8)
    parser.add_argument('--iters', type=int, default=600)
    parser.add_argument('--val-interval', type=int, default=200)
    parser.add_argument('--image-size', type=int, default=256)
    parser.add_argument('--queries', type=int, default=100)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--work-dir', default='work_dirs/memorise_coco128')
    args = parser.parse_args()
    data_root = osp.abspath(args.data_root) + '/'
    if not osp.isfile(osp.join(data_root, 'annotations', 'panoptic_train2017.json')):
        sys.exit(f'{data_root} has no annotations/panoptic_train2017.json (coco128 from '
                 '../shared/data, see its README)')
    cfg = build_config(data_root, args.num_images, args.iters, args.val_interval,
                       args.image_size, args.queries, args.lr)
    os.makedirs(args.work_dir, exist_ok=True)
    init_default_scope('mmdet')
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    dataset.full_init()
    img_ids = [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))]
    cfg.val_evaluator[1].ann_file = subset_instances_json(
        osp.join(data_root, 'annotations', 'instances_train2017.json'),
        osp.abspath(osp.join(args.work_dir, 'instances_subset.json')), img_ids)
    cfg.test_evaluator = cfg.val_evaluator
    config_path = osp.join(args.work_dir, 'maskdino_r18_coco128-panoptic.py')
    cfg.dump(config_path)
    start = time.time()
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools/train.py'), config_path,
                           '--work-dir', args.work_dir],
                          env=dict(os.environ, PYTHONWARNINGS='ignore'))
    if proc.returncode != 0:
        sys.exit(proc.returncode)
    wall = time.time() - start
    curve = read_curve(args.work_dir, args.val_interval, args.iters, keys=dict(METRICS),
                       last_run_only=True)
    print(f'\n### Memorisation on {args.num_images} coco128 images (train = eval), '
          f'{args.image_size}px, {args.iters} iterations, {wall / 60:.1f} min on this CPU\n')
    print('| iter | ' + ' | '.join(name for name, _ in METRICS) + ' |')
    print('|---|' + '---|' * len(METRICS))
    for point in curve:
        cells = [f'{point[n]:.3f}' if point[n] is not None else '-' for n, _ in METRICS]
        print(f'| {point["iter"]} | ' + ' | '.join(cells) + ' |')
    print('\nPQ and mIoU in %, AP in [0, 1] (mmdet conventions).')


if __name__ == '__main__':
    main()
