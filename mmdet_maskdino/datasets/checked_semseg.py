"""``ADE20KSegDataset`` whose label maps are checked once, at build time."""
import os.path as osp
from typing import List

import numpy as np

from mmdet.datasets import ADE20KSegDataset
from mmdet.registry import DATASETS
from .checks import DataProblem, DataReport, check_policy, log_skipped
from .dropped import DropTrackingMixin

__all__ = ['CheckedADE20KSegDataset']


@DATASETS.register_module()
class CheckedADE20KSegDataset(DropTrackingMixin, ADE20KSegDataset):
    """MMDetection's :class:`ADE20KSegDataset` (a folder of images + label PNGs) with every label map
    checked before training: it exists, has its image's size, and holds only labels in
    ``[0, num_classes)`` or ``ignore_index`` (values outside would otherwise be trained on as other
    classes or crash a loss). Problems name the PNG and the offending values.

    Args:
        data_check (str): ``'error'`` (default) or ``'skip'`` (drop those images, log the count).
        ignore_index (int): The void label (255).
        reduce_zero_label (bool): The label maps store ``label + 1`` with 0 as void (the
            pipeline's ``reduce_zero_label``): raw values are then checked in ``[0, num_classes]``.
        on_dropped (str): ``'replace'`` (default) or ``'error'``, as :class:`CheckedCocoDataset`.
        *args, **kwargs: :class:`ADE20KSegDataset`'s arguments.
    """

    def __init__(self, *args, data_check: str = 'error', ignore_index: int = 255,
                 reduce_zero_label: bool = False, on_dropped: str = 'replace',
                 **kwargs) -> None:
        self._init_drop_tracking(on_dropped)
        self.data_check, self.ignore_index = check_policy(data_check), ignore_index
        self.reduce_zero_label = reduce_zero_label
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        num_classes = len(self._metainfo['classes']) + int(self.reduce_zero_label)
        source = self.data_prefix.get('seg_map_path', '')
        report = DataReport(source)
        for index, info in enumerate(data_list):
            problem = self._label_map_problem(info, num_classes)
            if problem:
                report.add(DataProblem(source, 'bad label map', problem, index,
                                       file_name=osp.basename(info['img_path'])), image=True)
        report.enforce(self.data_check)
        if report.problems:
            log_skipped(report, f'{len(report.bad_images)} of {len(data_list)} images')
            data_list = [d for i, d in enumerate(data_list) if i not in report.bad_images]
        return data_list

    def _label_map_problem(self, info: dict, num_classes: int) -> str:
        from PIL import Image, UnidentifiedImageError
        path = info.get('seg_map_path')
        if path is None:
            return ''
        try:
            with Image.open(path) as seg, Image.open(info['img_path']) as img:
                seg_size, img_size = seg.size, img.size
                labels = np.unique(np.asarray(seg))
        except FileNotFoundError as err:
            return f'{err.filename} does not exist'
        except (UnidentifiedImageError, OSError) as err:
            return f'cannot read {path} or its image ({err})'
        if seg_size != img_size:
            return f'label map {path} is {seg_size[0]}x{seg_size[1]}, its image {img_size[0]}x' \
                   f'{img_size[1]}'
        bad = labels[(labels >= num_classes) & (labels != self.ignore_index)]
        if bad.size:
            return (f'label map {path} has label(s) {bad.tolist()[:10]} outside [0, {num_classes}) '
                    f'and not the ignore index {self.ignore_index}')
        return ''
