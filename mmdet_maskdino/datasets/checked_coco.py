"""``CocoDataset`` / ``CocoPanopticDataset`` whose annotations are checked once, at build time
(:mod:`.checks`)."""
import json
from typing import List

from mmengine.fileio import get_local_path

from mmdet.datasets import CocoDataset, CocoPanopticDataset
from mmdet.registry import DATASETS
from .checks import (DataError, DataReport, check_coco_instances, check_coco_panoptic,
                     check_policy, drop_counts, log_skipped)
from .dropped import DropTrackingMixin

__all__ = ['CheckedCocoDataset', 'CheckedCocoPanopticDataset']


@DATASETS.register_module()
class CheckedCocoDataset(DropTrackingMixin, CocoDataset):
    """MMDetection's :class:`CocoDataset` with its annotations and images checked before training.

    Checked: required fields, ``metainfo.classes`` against the json's category names, unknown
    image / category ids, degenerate or outside boxes, degenerate polygons, RLE size vs image size,
    and (``check_images``) that every image file exists, is readable and has the json's size. Each
    problem names the json, the image id and file, and the annotation id.

    Args:
        data_check (str): ``'error'`` (default): raise :class:`DataError` listing the problems.
            ``'skip'``: drop the bad annotations and images and log how many (a wrong class name
            is always an error).
        check_images (bool): Open every image header (fast; no pixel decoding).
        with_mask (bool): Annotations must have a ``segmentation``.
        on_dropped (str): When the training pipeline returns None for an image: ``'replace'``
            (default; a random other image, recorded for :class:`DroppedSamplesHook`) or
            ``'error'`` (:class:`DataError` naming the image and the transform). See
            :class:`DropTrackingMixin`.
        *args, **kwargs: :class:`CocoDataset`'s arguments.
    """

    def __init__(self, *args, data_check: str = 'error', check_images: bool = True,
                 with_mask: bool = True, on_dropped: str = 'replace', **kwargs) -> None:
        self._init_drop_tracking(on_dropped)
        self.data_check = check_policy(data_check)
        self.check_images, self.with_mask = check_images, with_mask
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        raw = _read_json(self.ann_file, self.backend_args)
        report = check_coco_instances(
            raw, self.ann_file, classes=self.metainfo.get('classes'),
            img_dir=self.data_prefix.get('img', '') if self.check_images else None,
            with_mask=self.with_mask)
        return _load_checked(self, report, raw, report.filtered, CocoDataset)


@DATASETS.register_module()
class CheckedCocoPanopticDataset(DropTrackingMixin, CocoPanopticDataset):
    """MMDetection's :class:`CocoPanopticDataset` with its annotations checked before training.

    Checked: required fields, ``metainfo.classes`` against the json's category names, unknown
    image / category ids, degenerate segment boxes and areas, and (``check_images``) that every
    image and panoptic PNG exists, is readable and has the json's size. ``'skip'`` drops bad images
    and bad segments (their pixels become void).

    Every entry of ``segments_info`` also records the annotation's ``iscrowd``, which
    :class:`LoadPanopticSegments` needs to leave crowd segments out of the targets (mmdet's dataset
    turns a crowd thing into a non-thing, indistinguishable from stuff).

    Args:
        data_check (str): ``'error'`` (default) or ``'skip'``.
        check_images (bool): Open every image and PNG header.
        on_dropped (str): ``'replace'`` (default) or ``'error'``, as :class:`CheckedCocoDataset`.
        *args, **kwargs: :class:`CocoPanopticDataset`'s arguments.
    """

    def __init__(self, *args, data_check: str = 'error', check_images: bool = True,
                 on_dropped: str = 'replace', **kwargs) -> None:
        self._init_drop_tracking(on_dropped)
        self.data_check, self.check_images = check_policy(data_check), check_images
        super().__init__(*args, **kwargs)

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """The parent's data info, with ``iscrowd`` in every ``segments_info`` entry."""
        data_info = super().parse_data_info(raw_data_info)
        img_id = raw_data_info['raw_img_info']['img_id']
        crowd = {ann['id']: bool(ann.get('iscrowd', 0)) for ann in raw_data_info['raw_ann_info']
                 if ann['image_id'] == img_id}
        for segment in data_info['segments_info']:
            segment['iscrowd'] = crowd[segment['id']]
        return data_info

    def load_data_list(self) -> List[dict]:
        raw = _read_json(self.ann_file, self.backend_args)
        report = check_coco_panoptic(
            raw, self.ann_file, classes=self.metainfo.get('classes'),
            img_dir=self.data_prefix.get('img', '') if self.check_images else None,
            seg_dir=self.data_prefix.get('seg', '') if self.check_images else None)
        return _load_checked(self, report, raw, report.filtered_panoptic, CocoPanopticDataset)


def _read_json(ann_file: str, backend_args) -> dict:
    with get_local_path(ann_file, backend_args=backend_args) as local_path:
        with open(local_path) as f:
            raw = json.load(f)
    if not isinstance(raw, dict):
        raise DataError(f'{ann_file}: not a COCO annotation file (top level is '
                        f'{type(raw).__name__})')
    return raw


def _load_checked(dataset, report: DataReport, raw: dict, filtered, base: type) -> List[dict]:
    """Enforce the policy, then let ``base.load_data_list`` index the checked dict."""
    report.enforce(dataset.data_check)
    if report.problems:
        log_skipped(report, drop_counts(report))
        raw = filtered(raw)
    api = dataset.COCOAPI()  # indexed from the checked dict, not re-read from the file
    api.dataset = raw
    api.createIndex()
    dataset.COCOAPI = lambda _: api  # what the base class's load_data_list constructs
    try:
        return base.load_data_list(dataset)
    finally:
        del dataset.COCOAPI
