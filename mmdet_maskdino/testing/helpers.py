"""Helpers for tests: configs from this repository and small models/data for the CPU.

``mmdet.testing.get_detector_cfg`` only looks inside mmdet's own source tree; these helpers load the
plugin's configs from ``configs/`` of this repository, build a Mask DINO small enough to train in seconds
on a CPU, make preprocessed batches with hand-made ground truth, and run the repository's tools.
"""
import os
import os.path as osp
import subprocess
import sys
from typing import List, Optional

from mmengine.config import Config

from ..datasets import ShapesSpec, dataset_is_current, generate_shapes_dataset

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def get_repo_config(relpath: str) -> Config:
    """Load ``configs/<relpath>`` of this repository (``mmdet::`` bases resolved).

    Args:
        relpath (str): Path relative to the repository's ``configs/`` folder.
    """
    path = osp.join(REPO_ROOT, 'configs', relpath)
    if not osp.isfile(path):
        raise FileNotFoundError(f'no config {path}')
    return Config.fromfile(path)


def make_shapes_data(root: str, spec: Optional[ShapesSpec] = None) -> str:
    """Generate (once) the synthetic shapes dataset under ``root`` and return ``root``."""
    spec = spec or ShapesSpec(num_train=8, num_val=4, img_size=(64, 64), max_objects=3)
    if not dataset_is_current(root, spec):
        generate_shapes_dataset(root, spec)
    return root


def run_tool(args: List[str], timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python <args>`` from the repository root; return the completed process (text output)."""
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def mmdet_tool(name: str) -> str:
    """Path of MMDetection's packaged tool ``name`` (what ``mim train mmdet`` / ``mim test`` run)."""
    import mmdet
    path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'mmdet does not ship {path}')
    return path


def build_small_maskdino(num_classes: Optional[int] = 4, num_queries: int = 10,
                         decoder_layers: int = 2, config: str = 'demo/maskdino_r18_shapes.py',
                         **head_overrides):
    """A small Mask DINO (a CPU demo config, smaller still) with initialised weights.

    Args:
        num_classes (int, optional): Thing classes; None keeps the config's.
        num_queries (int): Matching queries.
        decoder_layers (int): Decoder layers.
        config (str): Config under ``configs/`` (the panoptic / semantic demo configs work too).
        **head_overrides: Set on ``model.panoptic_head`` (``num_stuff_classes`` also on the fusion
            head).
    """
    from mmengine.registry import init_default_scope

    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    cfg = get_repo_config(config)
    head = cfg.model.panoptic_head
    if num_classes is not None:
        head.num_things_classes = num_classes
        cfg.model.panoptic_fusion_head.num_things_classes = num_classes
    head.num_queries = num_queries
    head.transformer_decoder.num_layers = decoder_layers
    head.update(head_overrides)
    if 'num_stuff_classes' in head_overrides:
        cfg.model.panoptic_fusion_head.num_stuff_classes = head_overrides['num_stuff_classes']
    cfg.model.train_cfg.num_points = 256
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def make_det_batch(model, masks_per_image: List[List], labels_per_image: List[List[int]],
                   image_size=(64, 64), seed: int = 0, training: bool = True,
                   sem_segs: Optional[List] = None) -> dict:
    """A preprocessed batch with the given GT masks (lists of (H, W) bool arrays) and labels.

    Boxes are the tight boxes of the masks (xyxy, exclusive max); images are random textures with
    the masks painted brighter, so the GT is learnable. ``sem_segs`` (one (H, W) uint8 label map
    per image, 255 = void) become ``gt_sem_seg`` and paint the image by class too.
    """
    import numpy as np
    import torch

    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData, PixelData
    rng = np.random.default_rng(seed)
    h, w = image_size
    inputs, samples = [], []
    for masks, labels in zip(masks_per_image, labels_per_image):
        img = rng.uniform(0, 80, size=(3, h, w))
        boxes = []
        for m, label in zip(masks, labels):
            img[:, m] = 150 + 30 * label
            ys, xs = np.nonzero(m)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if len(xs) else
                         [0, 0, 0, 0])
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             scale_factor=(1.0, 1.0), pad_shape=(h, w)))
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor(boxes, dtype=torch.float32).view(-1, 4),
            labels=torch.tensor(labels, dtype=torch.long),
            masks=BitmapMasks(np.stack(masks).astype(np.uint8) if masks else
                              np.zeros((0, h, w), np.uint8), h, w))
        if sem_segs is not None:
            sem = np.asarray(sem_segs[len(samples)], np.uint8)
            for label in np.unique(sem[sem != 255]):
                img[0, sem == label] = 100 + 25 * int(label)
            sample.gt_sem_seg = PixelData(sem_seg=torch.from_numpy(sem)[None])
        inputs.append(torch.from_numpy(img.astype(np.uint8)))
        samples.append(sample)
    return model.data_preprocessor(dict(inputs=inputs, data_samples=samples), training)
