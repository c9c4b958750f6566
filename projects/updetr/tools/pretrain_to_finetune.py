"""Make a fine-tuning start point from an UP-DETR pretext checkpoint.

Builds the target config's model (its own initialisation, backbone ``init_cfg`` included), puts
the pretext's transformer weights in it (:func:`pretrained_transformer_state`), prints what was
transferred / skipped / kept, and saves ``{'state_dict': ...}`` for ``load_from``.

Example::

    python projects/updetr/tools/pretrain_to_finetune.py \\
        work_dirs/updetr_maskdino_r18_shapes/iter_1000.pth configs/demo/maskdino_r18_shapes.py \\
        --out work_dirs/updetr_init.pth
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..')))

from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

import mmdet_maskdino  # noqa: F401,E402
from mmdet.registry import MODELS  # noqa: E402
from projects.updetr.updetr import pretrained_transformer_state  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('pretext_checkpoint')
    parser.add_argument('target_config')
    parser.add_argument('--out', required=True)
    parser.add_argument('--seed', type=int, default=0, help='seed of the target initialisation')
    args = parser.parse_args()
    init_default_scope('mmdet')
    cfg = Config.fromfile(args.target_config)
    torch.manual_seed(args.seed)
    target = MODELS.build(cfg.model)
    target.init_weights()
    ckpt = torch.load(args.pretext_checkpoint, map_location='cpu', weights_only=True)
    state, report = pretrained_transformer_state(ckpt.get('state_dict', ckpt), target)
    print(report.summary())
    if not report.transferred:
        print('error: no transformer weight has the target\'s shape; pretrain with the '
              'target\'s widths', file=sys.stderr)
        return 1
    torch.save(dict(state_dict=state, meta=dict(updetr_pretext=args.pretext_checkpoint)),
               args.out)
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
