"""Inputs of the speed benchmark: real images of the generated shapes dataset, crowded enough.

The training step of a query-based segmenter costs more with more objects (matching, mask losses on
every matched query, denoising groups), so the benchmark trains on generated images holding
``min_objects..max_objects`` visible objects each, read back from the dataset's COCO json like any
annotated image.
"""
import json
import os.path as osp
from dataclasses import dataclass
from typing import List

import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image

from ..datasets import ShapesSpec, dataset_is_current, generate_shapes_dataset


@dataclass
class BenchImage:
    """One annotated image.

    Attributes:
        image (np.ndarray): (H, W, 3) uint8 RGB.
        labels (np.ndarray): (n,) int64 contiguous thing labels.
        masks (np.ndarray): (n, H, W) uint8 {0, 1} instance masks.
        bboxes (np.ndarray): (n, 4) float32 absolute xyxy boxes (the json's boxes).
    """
    image: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    bboxes: np.ndarray


def crowded_images(root: str, size: int, num_images: int = 2, min_objects: int = 10,
                   max_objects: int = 30, seed: int = 0) -> List[BenchImage]:
    """Generate (once) a shapes dataset of ``size x size`` images under ``root`` and return the
    first ``num_images`` training images with ``min_objects..max_objects`` visible objects.

    Raises:
        RuntimeError: If the generated split holds too few such images.
    """
    spec = ShapesSpec(num_train=4 * num_images + 4, num_val=1, img_size=(size, size),
                      max_objects=max_objects + 10, empty_ratio=0.0, seed=seed)
    if not dataset_is_current(root, spec):
        generate_shapes_dataset(root, spec)
    with open(osp.join(root, 'annotations', 'instances_train.json')) as f:
        coco = json.load(f)
    cat_to_label = {c['id']: i for i, c in enumerate(coco['categories'])}
    anns_of = {img['id']: [] for img in coco['images']}
    for ann in coco['annotations']:
        anns_of[ann['image_id']].append(ann)
    out = []
    for info in coco['images']:
        anns = anns_of[info['id']]
        if not min_objects <= len(anns) <= max_objects:
            continue
        image = np.asarray(Image.open(osp.join(root, 'train', info['file_name'])).convert('RGB'))
        masks = np.stack([mask_utils.decode(a['segmentation']) for a in anns])
        x, y, w, h = np.asarray([a['bbox'] for a in anns], np.float32).T
        out.append(BenchImage(image=image,
                              labels=np.asarray([cat_to_label[a['category_id']] for a in anns]),
                              masks=masks, bboxes=np.stack([x, y, x + w, y + h], -1)))
        if len(out) == num_images:
            return out
    raise RuntimeError(f'{root}: only {len(out)} generated images hold {min_objects}-'
                       f'{max_objects} objects, {num_images} wanted')


def training_batch(model, images: List[BenchImage], device: str = 'cpu') -> dict:
    """A batch for ``model(**batch, mode='loss')`` through the model's own data preprocessor."""
    import torch
    from mmengine.structures import InstanceData

    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    inputs, samples = [], []
    for item in images:
        h, w = item.image.shape[:2]
        # the preprocessor expects BGR (``bgr_to_rgb=True`` in the configs)
        inputs.append(torch.from_numpy(np.ascontiguousarray(item.image[..., ::-1].transpose(2, 0,
                                                                                            1))))
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             scale_factor=(1.0, 1.0), pad_shape=(h, w)))
        sample.gt_instances = InstanceData(bboxes=torch.from_numpy(item.bboxes),
                                           labels=torch.from_numpy(item.labels),
                                           masks=BitmapMasks(item.masks, h, w))
        samples.append(sample)
    batch = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), True)
    batch['inputs'] = batch['inputs'].to(device)
    for s in batch['data_samples']:
        s.gt_instances = s.gt_instances.to(device)
    return batch
