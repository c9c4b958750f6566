"""Does each decoder layer refine boxes? Per-layer box error of a trained model on training data.

For a few training batches (the config's train pipeline), runs the head as in training (denoising
queries included, no gradient) and prints, per prediction set -- the decoder's input anchors, then
every layer -- the mean L1 (normalised cxcywh) and IoU against the GT of (a) the denoising queries
(input = noised GT boxes) and (b) the matching queries the last layer matches.

Example::

    python tools/analysis_tools/box_refinement.py configs/demo/maskdino_r18_shapes.py \\
        work_dirs/demo/iter_300.pth --batches 8
"""
import argparse
import math
import statistics

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint

import mmdet_maskdino  # noqa: F401
from mmdet.registry import MODELS
from mmdet_maskdino.benchmarks.refinement import refinement_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', help="a checkpoint, or 'none' for the initialised model")
    parser.add_argument('--batches', type=int, default=8)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config settings, e.g. '
                        'train_dataloader.dataset.data_root=data/shapes_512_128/')
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    init_default_scope('mmdet')
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    model = MODELS.build(cfg.model)
    if args.checkpoint == 'none':
        model.init_weights()
    else:
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.eval()
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=args.seed)
    tables = []
    for i, data in enumerate(loader):
        if i == args.batches:
            break
        tables.append(refinement_table(model, model.data_preprocessor(data, True)))
    num_layers = model.panoptic_head.decoder.num_layers
    names = ['input anchors'] * (len(tables[0]['dn']) - num_layers) + \
        [f'layer {i + 1}' for i in range(num_layers)]

    def mean(kind, s, key):
        values = [t[kind][s][key] for t in tables if not math.isnan(t[kind][s][key])]
        return statistics.fmean(values) if values else float('nan')

    print(f'\n### Box refinement per decoder layer, {len(tables)} training batches of '
          f'{args.config}\n')
    print('| set | DN L1 | DN IoU | matched L1 | matched IoU |')
    print('|---|---|---|---|---|')
    for s, name in enumerate(names):
        print(f'| {name} | {mean("dn", s, "l1"):.4f} | {mean("dn", s, "iou"):.3f} | '
              f'{mean("matching", s, "l1"):.4f} | {mean("matching", s, "iou"):.3f} |')


if __name__ == '__main__':
    main()
