"""``CocoDataset`` whose annotations are checked once, at build time (:mod:`.checks`)."""
import json
from typing import List

from mmengine.fileio import get_local_path
from mmengine.logging import print_log

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS
from .checks import DataError, check_coco_instances, drop_counts

__all__ = ['CheckedCocoDataset']


@DATASETS.register_module()
class CheckedCocoDataset(CocoDataset):
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
        *args, **kwargs: :class:`CocoDataset`'s arguments.
    """

    def __init__(self, *args, data_check: str = 'error', check_images: bool = True,
                 with_mask: bool = True, **kwargs) -> None:
        if data_check not in ('error', 'skip'):
            raise ValueError(f"data_check must be 'error' or 'skip', got {data_check!r}")
        self.data_check, self.check_images, self.with_mask = data_check, check_images, with_mask
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        with get_local_path(self.ann_file, backend_args=self.backend_args) as local_path:
            with open(local_path) as f:
                raw = json.load(f)
        if not isinstance(raw, dict):
            raise DataError(f'{self.ann_file}: not a COCO annotation file (top level is '
                            f'{type(raw).__name__})')
        report = check_coco_instances(
            raw, self.ann_file, classes=self.metainfo.get('classes'),
            img_dir=self.data_prefix.get('img', '') if self.check_images else None,
            with_mask=self.with_mask)
        report.enforce(self.data_check)
        if report.problems:
            for problem in report.problems[:20]:
                print_log(f'data_check=skip: {problem}', logger='current', level=30)
            print_log(f'data_check=skip: dropped {drop_counts(report)} of {self.ann_file} '
                      f'({report.summary()})', logger='current', level=30)
            raw = report.filtered(raw)
        coco = self.COCOAPI()  # indexed from the checked dict, not re-read from the file
        coco.dataset = raw
        coco.createIndex()
        self.COCOAPI = lambda _: coco  # what CocoDataset.load_data_list constructs
        try:
            return super().load_data_list()
        finally:
            del self.COCOAPI
