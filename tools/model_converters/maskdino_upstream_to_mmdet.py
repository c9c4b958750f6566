"""Convert an official Mask DINO checkpoint (detectron2 ``.pth`` / ``.pkl``) to this plugin.

Example::

    python tools/model_converters/maskdino_upstream_to_mmdet.py \
        maskdino_r50_50ep_300q_hid2048_3sd1_instance_maskenhanced_mask46.3ap_box51.7ap.pth \
        checkpoints/maskdino_r50_coco.pth --config configs/maskdino_r50.py

With ``--config`` the converted weights are loaded strictly into the model built from that config
before saving, so a level-count or class-count mismatch is reported immediately.
"""
import argparse
import os.path as osp
import sys

import numpy as np
import torch

from mmdet_maskdino.converters import (UnsafeCheckpointError, convert_upstream_state_dict,
                                       describe_upstream, load_converted,
                                       load_upstream_checkpoint)


def load_upstream(path: str, unsafe: bool = False) -> dict:
    """The ``model`` state dict of a detectron2 checkpoint (torch ``.pth`` or pickled ``.pkl``).

    Nothing in the file is executed unless ``unsafe`` (see ``load_upstream_checkpoint``).
    """
    ckpt = load_upstream_checkpoint(path, unsafe=unsafe)
    sd = ckpt.get('model', ckpt) if isinstance(ckpt, dict) else ckpt
    if not isinstance(sd, dict):
        raise UnsafeCheckpointError(f'{path}: expected a dict of tensors, got {type(sd).__name__}')
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in sd.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='upstream checkpoint (.pth or .pkl)')
    parser.add_argument('dst', help='output checkpoint for this plugin')
    parser.add_argument('--config', help='plugin config to verify a strict load against')
    parser.add_argument('--unsafe-load', action='store_true',
                        help='full unpickling, which runs any code the file names: only for '
                        'checkpoints from a trusted source that safe loading refuses')
    args = parser.parse_args()

    try:
        sd = load_upstream(args.src, unsafe=args.unsafe_load)
    except UnsafeCheckpointError as err:
        sys.exit(f'error: {err}')
    info = describe_upstream(sd)
    print(f'upstream model: {info}')
    converted = convert_upstream_state_dict(sd)
    if args.config:
        from mmengine.config import Config
        from mmengine.registry import init_default_scope

        from mmdet.registry import MODELS
        cfg = Config.fromfile(args.config)
        init_default_scope(cfg.get('default_scope', 'mmdet'))
        load_converted(MODELS.build(cfg.model), converted)
        print(f'strict load into {args.config}: OK')
    torch.save(dict(state_dict=converted, meta=dict(upstream=info, source=osp.basename(args.src))),
               args.dst)
    print(f'saved {len(converted)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
