"""Random query patches (UP-DETR, Dai et al. CVPR 2021, sec. 3.1): sampling and packing."""
from typing import Optional

import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks


def sample_patch_boxes(rng: np.random.Generator, height: int, width: int, num: int,
                       min_side: int = 8) -> np.ndarray:
    """``num`` random patch boxes inside a ``height x width`` image.

    Each side is uniform in ``[min_side, side - min_side]`` pixels (UP-DETR), clipped to at least
    1 and at most the image side, and the corner uniform over the positions that keep the patch
    inside the image.

    Args:
        rng (np.random.Generator): The random source (the caller decides the seeding).
        height, width (int): Image size.
        num (int): Patches.
        min_side (int): Smallest side, and the margin of the largest.

    Returns:
        np.ndarray: (num, 4) float32 xyxy boxes in pixels (exclusive max), inside the image.
    """
    def sides(size: int) -> np.ndarray:
        low = min(min_side, size)
        high = max(low, size - min_side)
        return rng.integers(low, high + 1, num)

    w, h = sides(width), sides(height)
    x0 = rng.integers(0, width - w + 1)
    y0 = rng.integers(0, height - h + 1)
    return np.stack([x0, y0, x0 + w, y0 + h], 1).astype(np.float32)


@TRANSFORMS.register_module()
class SampleQueryPatches(BaseTransform):
    """Crop ``num_patches`` random patches of the (already augmented) image as the pretext's
    queries; their boxes become the targets.

    Adds ``query_patches`` (num_patches, 3, patch_size, patch_size) float32 (the image's channel
    order and value range; normalised by the model like the image), ``gt_bboxes`` (the patch
    boxes), ``gt_bboxes_labels`` (zeros: one class, "patch"), ``gt_ignore_flags`` and
    ``gt_masks`` (the boxes as masks: a box is a coarse mask, for the optional mask supervision).

    Args:
        num_patches (int): Patches per image (UP-DETR: 10).
        patch_size (int): Side of the resized patch (UP-DETR: 128).
        min_side (int): See :func:`sample_patch_boxes` (UP-DETR: 8).
        flip_prob (float): Each patch's own horizontal flip probability (its own augmentation;
            the patch must be found, not copied).
        seed (int, optional): Fixed patches per image (``seed`` mixed with the image id), for a
            reproducible validation set; None draws from NumPy's global state (seeded per worker
            by MMEngine's ``randomness``).
    """

    def __init__(self, num_patches: int = 10, patch_size: int = 128, min_side: int = 8,
                 flip_prob: float = 0.5, seed: Optional[int] = None) -> None:
        self.num_patches = num_patches
        self.patch_size = patch_size
        self.min_side = min_side
        self.flip_prob = flip_prob
        self.seed = seed

    def _rng(self, results: dict) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng(np.random.randint(0, 2**31))
        return np.random.default_rng((self.seed, int(results.get('img_id', 0))))

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        rng = self._rng(results)
        boxes = sample_patch_boxes(rng, h, w, self.num_patches, self.min_side)
        patches, masks = [], np.zeros((self.num_patches, h, w), np.uint8)
        for i, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
            patch = mmcv.imresize(img[y0:y1, x0:x1], (self.patch_size, self.patch_size))
            if rng.random() < self.flip_prob:
                patch = patch[:, ::-1]
            patches.append(np.ascontiguousarray(patch.transpose(2, 0, 1), dtype=np.float32))
            masks[i, y0:y1, x0:x1] = 1
        results['query_patches'] = np.stack(patches)
        results['gt_bboxes'] = HorizontalBoxes(boxes)
        results['gt_bboxes_labels'] = np.zeros(self.num_patches, np.int64)
        results['gt_ignore_flags'] = np.zeros(self.num_patches, bool)
        results['gt_masks'] = BitmapMasks(masks, h, w)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_patches={self.num_patches}, '
                f'patch_size={self.patch_size}, min_side={self.min_side}, seed={self.seed})')


@TRANSFORMS.register_module()
class PackPatchInputs(PackDetInputs):
    """:class:`PackDetInputs` that also packs ``query_patches`` into the data sample
    (``data_sample.query_patches``: (num_patches, 3, P, P) float32)."""

    def transform(self, results: dict) -> dict:
        packed = super().transform(results)
        packed['data_samples'].query_patches = torch.from_numpy(results['query_patches'])
        return packed

