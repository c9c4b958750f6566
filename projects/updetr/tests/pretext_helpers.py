"""Shared by the UP-DETR tests: a pretext model from a config, a one-image batch, an image."""
import numpy as np
import torch

from mmdet_maskdino.testing import get_repo_config

PRETEXT_CONFIG = 'projects/updetr/configs/updetr_maskdino_r18_shapes.py'


def pretext_model(num_points=256, config=PRETEXT_CONFIG):
    from mmengine.registry import init_default_scope

    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    cfg = get_repo_config('../' + config)
    cfg.model.backbone.init_cfg = None  # the pretrained backbone is an experiment's artefact
    cfg.model.train_cfg.num_points = num_points
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return cfg, model


def pretext_batch(model, cfg, image, img_id=0):
    from mmcv.transforms import Compose

    from mmdet.registry import TRANSFORMS
    steps = [s for s in cfg.train_pipeline if s['type'] not in ('LoadImageFromFile', 'RandomFlip')]
    for s in steps:
        if s['type'] == 'SampleQueryPatches':
            s.update(seed=0, flip_prob=0.0)
    pipeline = Compose([TRANSFORMS.build(s) for s in steps])
    h, w = image.shape[:2]
    data = pipeline(dict(img=image, img_id=img_id, img_shape=(h, w), ori_shape=(h, w),
                         img_path=f'{img_id}.png'))
    return model.data_preprocessor(dict(inputs=[data['inputs']],
                                        data_samples=[data['data_samples']]), True)


def shapes_image(size=128, seed=0):
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), 40, np.float32) + rng.uniform(0, 20, (size, size, 3))
    for _ in range(6):
        y, x = rng.integers(0, size - 30, 2)
        img[y:y + rng.integers(10, 30), x:x + rng.integers(10, 30)] = rng.uniform(60, 255, 3)
    return img.astype(np.float32)
