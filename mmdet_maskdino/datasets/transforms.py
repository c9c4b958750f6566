"""Loading transforms: panoptic segments as upstream Mask DINO makes its targets."""
from typing import Optional

import mmcv
import numpy as np
from mmengine.fileio import get

from mmdet.datasets.transforms import LoadPanopticAnnotations
from mmdet.registry import TRANSFORMS
from mmdet.structures.mask import BitmapMasks

__all__ = ['LoadPanopticSegments']


@TRANSFORMS.register_module()
class LoadPanopticSegments(LoadPanopticAnnotations):
    """Every non-crowd segment of a panoptic annotation, things and stuff, as one instance, in the
    annotation's ``segments_info`` order (upstream's panoptic targets).

    mmdet's :class:`LoadPanopticAnnotations` loads things as instances and stuff only into the
    semantic map, so a model that rebuilds stuff masks from that map orders its targets things
    first, then stuff by class. Upstream keeps ``segments_info``'s order (things and stuff
    interleaved) and draws its denoising noise per target index; with this transform the same
    draws land on the same segments. The instances then go through mmdet's transforms (flip,
    resize, crop, ``FilterAnnotations``) like any instance, stuff included, and
    :func:`~mmdet_maskdino.models.utils.build_targets` takes them as they come.

    Added keys: ``gt_masks`` (BitmapMasks, one per segment), ``gt_bboxes`` (boxes of the masks,
    exclusive max, as upstream's ``get_bounding_boxes``), ``gt_bboxes_labels`` (contiguous labels,
    things first), ``gt_ignore_flags`` (all False), and with ``with_seg`` ``gt_seg_map`` as mmdet's.

    Requires ``iscrowd`` in every ``segments_info`` entry (recorded by
    :class:`~mmdet_maskdino.datasets.CheckedCocoPanopticDataset`): crowd segments are left out, as
    upstream does.

    Args:
        with_seg (bool): Also load the semantic map (255 = void).
        box_type (str): Box type of ``gt_bboxes``.
        imdecode_backend (str): Backend of :func:`mmcv.imfrombytes`.
        backend_args (dict, optional): File backend arguments.
    """

    def __init__(self,
                 with_seg: bool = False,
                 box_type: str = 'hbox',
                 imdecode_backend: str = 'cv2',
                 backend_args: Optional[dict] = None) -> None:
        super().__init__(with_bbox=True, with_label=True, with_mask=True, with_seg=with_seg,
                         box_type=box_type, imdecode_backend=imdecode_backend,
                         backend_args=backend_args)

    def transform(self, results: dict) -> dict:
        """Load the segments of ``results['seg_map_path']`` (nothing when it is None)."""
        if results.get('seg_map_path') is None:
            return results
        segments = results['segments_info']
        missing = [s['id'] for s in segments if 'iscrowd' not in s]
        if missing:
            raise KeyError(f"LoadPanopticSegments: segments_info of {results['seg_map_path']} has "
                           f"no 'iscrowd' (segment ids {missing[:5]}); build the dataset as "
                           "CheckedCocoPanopticDataset, which records it")
        ids = self.rgb2id(mmcv.imfrombytes(get(results['seg_map_path'],
                                               backend_args=self.backend_args),
                                           flag='color', channel_order='rgb').squeeze())
        h, w = results['ori_shape']
        kept = [s for s in segments if not s['iscrowd']]
        masks = BitmapMasks(np.stack([ids == s['id'] for s in kept]).astype(np.uint8) if kept
                            else np.zeros((0, h, w), np.uint8), h, w)
        results['gt_masks'] = masks
        results['gt_bboxes'] = masks.get_bboxes(dst_type=self.box_type)
        results['gt_bboxes_labels'] = np.array([s['category'] for s in kept], dtype=np.int64)
        results['gt_ignore_flags'] = np.zeros(len(kept), dtype=bool)
        if self.with_seg:
            seg = np.full(ids.shape, 255, dtype=np.uint8)
            for s in segments:
                seg[ids == s['id']] = s['category']
            results['gt_seg_map'] = seg
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(with_seg={self.with_seg}, box_type={self.box_type!r})'
