"""A deterministic synthetic dataset of textured shapes on textured backgrounds.

The generator writes one dataset in the three formats MMDetection reads:

* COCO **instance** (``annotations/instances_{split}.json``, compressed RLE masks, ids from 1);
* COCO **panoptic** (``annotations/panoptic_{split}.json`` + ``annotations/panoptic_{split}/*.png``);
* **semantic** label maps (``annotations/semantic_{split}/*.png``, uint8 contiguous class indices with
  things first, then stuff; 255 is never written because every pixel has a class).

Images live in ``{split}/*.jpg``. Objects overlap and occlude each other (masks are the visible parts,
so instance and panoptic annotations agree pixel for pixel), sizes vary by an order of magnitude, and a
fraction of the images hold no object at all. The same arguments always give the same bytes.
"""
import json
import os
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image

THING_CLASSES: Tuple[str, ...] = ('circle', 'square', 'triangle', 'cross')
STUFF_CLASSES: Tuple[str, ...] = ('sky', 'ground')
#: Category ids in the json files: things 1..4 then stuff 5..6 (COCO-style ids from 1).
CATEGORY_IDS: Tuple[int, ...] = tuple(range(1, len(THING_CLASSES) + len(STUFF_CLASSES) + 1))


@dataclass(frozen=True)
class ShapesSpec:
    """Sizes of a generated dataset.

    Args:
        num_train (int): Number of training images.
        num_val (int): Number of validation images.
        img_size (Tuple[int, int]): ``(height, width)`` of every image.
        max_objects (int): Maximum number of objects drawn on one image.
        empty_ratio (float): Fraction of images drawn without any object.
        seed (int): Seed of the generator; same seed, same dataset.
    """
    num_train: int = 64
    num_val: int = 16
    img_size: Tuple[int, int] = (128, 128)
    max_objects: int = 5
    empty_ratio: float = 0.1
    seed: int = 0


def _texture(rng: np.random.Generator, h: int, w: int, base: np.ndarray) -> np.ndarray:
    """A (h, w, 3) uint8 texture: stripes of random period/angle plus pixel noise around ``base``."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(4, 16)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    amp = rng.uniform(10, 35)
    noise = rng.normal(0, 8, size=(h, w, 1))
    tex = base[None, None, :] + amp * stripes[..., None] + noise
    return np.clip(tex, 0, 255).astype(np.uint8)


def _shape_mask(rng: np.random.Generator, label: int, h: int, w: int) -> np.ndarray:
    """A boolean (h, w) mask of one shape of class ``label`` at a random place and size."""
    size = rng.uniform(0.06, 0.3) * min(h, w)
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    name = THING_CLASSES[label]
    if name == 'circle':
        return dx ** 2 + dy ** 2 <= size ** 2
    if name == 'square':
        return (np.abs(dx) <= size) & (np.abs(dy) <= size)
    if name == 'triangle':  # apex up, isosceles
        return (dy <= size) & (dy >= -size) & (np.abs(dx) <= (dy + size) / 2)
    if name == 'cross':
        arm = size / 3
        return ((np.abs(dx) <= size) & (np.abs(dy) <= arm)) | \
            ((np.abs(dy) <= size) & (np.abs(dx) <= arm))
    raise ValueError(f'unknown shape class {name!r}')


def _draw_image(rng: np.random.Generator, spec: ShapesSpec,
                min_area: int = 16) -> Tuple[np.ndarray, np.ndarray, List[int]]:
    """Draw one image.

    Returns:
        tuple: ``image`` (H, W, 3) uint8 RGB, ``segment_map`` (H, W) int32 where 0 = sky, 1 = ground and
        k >= 2 is object ``k - 2``, and ``labels``: the thing class of each object, in drawing order.
    """
    h, w = spec.img_size
    horizon = int(rng.uniform(0.3, 0.7) * h)
    image = np.empty((h, w, 3), np.uint8)
    image[:horizon] = _texture(rng, horizon, w, np.array([110., 160., 230.]))[:horizon]
    image[horizon:] = _texture(rng, h - horizon, w, np.array([120., 100., 60.]))
    segment_map = np.zeros((h, w), np.int32)
    segment_map[horizon:] = 1

    labels: List[int] = []
    if rng.uniform() >= spec.empty_ratio:
        for _ in range(int(rng.integers(1, spec.max_objects + 1))):
            label = int(rng.integers(len(THING_CLASSES)))
            mask = _shape_mask(rng, label, h, w)
            if mask.sum() < min_area:
                continue
            base = rng.uniform(0, 255, size=3)
            image[mask] = _texture(rng, h, w, base)[mask]
            segment_map[mask] = 2 + len(labels)
            labels.append(label)
    return image, segment_map, labels


def _bbox_xywh(mask: np.ndarray) -> List[float]:
    """Tight COCO box ``[x, y, w, h]`` (pixel units, exclusive right/bottom) of a boolean mask."""
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
            float(ys.max() - ys.min() + 1)]


def _categories() -> List[Dict]:
    cats = [dict(id=CATEGORY_IDS[i], name=n, supercategory='shape', isthing=1)
            for i, n in enumerate(THING_CLASSES)]
    offset = len(THING_CLASSES)
    cats += [dict(id=CATEGORY_IDS[offset + i], name=n, supercategory='stuff', isthing=0)
             for i, n in enumerate(STUFF_CLASSES)]
    return cats


def _write_split(root: str, split: str, num_images: int, spec: ShapesSpec,
                 rng: np.random.Generator, first_image_id: int) -> Dict[str, int]:
    """Write the images and the three annotation formats of one split; return counts."""
    img_dir = osp.join(root, split)
    pan_dir = osp.join(root, 'annotations', f'panoptic_{split}')
    sem_dir = osp.join(root, 'annotations', f'semantic_{split}')
    for d in (img_dir, pan_dir, sem_dir):
        os.makedirs(d, exist_ok=True)
    images, instances, panoptic_anns = [], [], []
    num_things = len(THING_CLASSES)
    h, w = spec.img_size
    for i in range(num_images):
        image_id = first_image_id + i
        file_name = f'{image_id:06d}.jpg'
        image, segment_map, labels = _draw_image(rng, spec)
        Image.fromarray(image).save(osp.join(img_dir, file_name), quality=95)
        images.append(dict(id=image_id, file_name=file_name, height=h, width=w))

        semantic = np.empty((h, w), np.uint8)
        pan_png = np.zeros((h, w), np.int64)
        segments = []
        # stuff first (segment ids 1, 2), then one segment per visible object.
        for stuff_idx in range(len(STUFF_CLASSES)):
            mask = segment_map == stuff_idx
            semantic[mask] = num_things + stuff_idx
            if mask.any():
                seg_id = stuff_idx + 1
                pan_png[mask] = seg_id
                segments.append(dict(id=seg_id, category_id=CATEGORY_IDS[num_things + stuff_idx],
                                     iscrowd=0, area=int(mask.sum()), bbox=_bbox_xywh(mask)))
        for obj_idx, label in enumerate(labels):
            mask = segment_map == obj_idx + 2
            if not mask.any():  # fully occluded by later objects
                continue
            semantic[mask] = label
            seg_id = obj_idx + 3
            pan_png[mask] = seg_id
            area, bbox = int(mask.sum()), _bbox_xywh(mask)
            segments.append(dict(id=seg_id, category_id=CATEGORY_IDS[label], iscrowd=0,
                                 area=area, bbox=bbox))
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            rle['counts'] = rle['counts'].decode('ascii')
            instances.append(dict(id=len(instances) + 1, image_id=image_id,
                                  category_id=CATEGORY_IDS[label], segmentation=rle,
                                  area=area, bbox=bbox, iscrowd=0))
        png_name = file_name.replace('.jpg', '.png')
        rgb = np.stack([pan_png % 256, pan_png // 256 % 256, pan_png // 65536], -1).astype(np.uint8)
        Image.fromarray(rgb).save(osp.join(pan_dir, png_name))
        Image.fromarray(semantic).save(osp.join(sem_dir, png_name))
        panoptic_anns.append(dict(image_id=image_id, file_name=png_name, segments_info=segments))

    ann_dir = osp.join(root, 'annotations')
    info = dict(description='mmdet-maskdino synthetic shapes', seed=spec.seed)
    with open(osp.join(ann_dir, f'instances_{split}.json'), 'w') as f:
        json.dump(dict(info=info, images=images, annotations=instances,
                       categories=[c for c in _categories() if c['isthing']]), f)
    with open(osp.join(ann_dir, f'panoptic_{split}.json'), 'w') as f:
        json.dump(dict(info=info, images=images, annotations=panoptic_anns,
                       categories=_categories()), f)
    return dict(images=len(images), instances=len(instances))


def generate_shapes_dataset(root: str, spec: ShapesSpec = ShapesSpec()) -> Dict[str, Dict[str, int]]:
    """Generate the dataset under ``root`` (created if needed) and return per-split counts.

    Layout::

        root/train/*.jpg, root/val/*.jpg
        root/annotations/instances_{train,val}.json
        root/annotations/panoptic_{train,val}.json, panoptic_{train,val}/*.png
        root/annotations/semantic_{train,val}/*.png
    """
    if spec.num_train < 1 or spec.num_val < 1:
        raise ValueError(f'need at least one train and one val image, got {spec}')
    if min(spec.img_size) < 32:
        raise ValueError(f'img_size must be at least 32x32, got {spec.img_size}')
    rng = np.random.default_rng(spec.seed)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    counts = dict(train=_write_split(root, 'train', spec.num_train, spec, rng, 1))
    counts['val'] = _write_split(root, 'val', spec.num_val, spec, rng, 1 + spec.num_train)
    with open(osp.join(root, 'annotations', 'spec.json'), 'w') as f:
        json.dump(dict(spec.__dict__, img_size=list(spec.img_size)), f)
    return counts


def dataset_is_current(root: str, spec: ShapesSpec) -> bool:
    """Whether ``root`` already holds a complete dataset generated with exactly ``spec``."""
    path = osp.join(root, 'annotations', 'spec.json')
    if not osp.isfile(path):
        return False
    with open(path) as f:
        return json.load(f) == dict(spec.__dict__, img_size=list(spec.img_size))


def metainfo(with_stuff: bool = False) -> Dict[str, Sequence]:
    """``metainfo`` dict for mmdet datasets: things only (instance) or things + stuff (panoptic)."""
    if not with_stuff:
        return dict(classes=THING_CLASSES)
    return dict(classes=THING_CLASSES + STUFF_CLASSES, thing_classes=THING_CLASSES,
                stuff_classes=STUFF_CLASSES)
