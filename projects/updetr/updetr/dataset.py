"""Unlabelled images: a folder, no annotation file."""
import os
import os.path as osp
from typing import List, Sequence

from PIL import Image

from mmdet.datasets import BaseDetDataset
from mmdet.registry import DATASETS
from mmdet_maskdino.datasets.checks import DataError

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


@DATASETS.register_module()
class FolderImageDataset(BaseDetDataset):
    """Every image under ``data_root / data_prefix['img']`` (recursively, sorted), no labels.

    Each entry has ``img_path``, ``img_id`` (its index), ``height``, ``width`` (read from the file
    header at build time: an unreadable file is a :class:`DataError` naming it, not a crash
    mid-epoch) and no instances. The pretext pipeline makes the targets
    (:class:`SampleQueryPatches`).

    Args:
        extensions (Sequence[str]): File suffixes taken (case-insensitive).
        **kwargs: :class:`BaseDetDataset` arguments (``data_root``, ``data_prefix``,
            ``pipeline``, ``indices``, ...); ``ann_file`` is not used.
    """

    # one thing class: the patch
    METAINFO = dict(classes=('patch', ), thing_classes=('patch', ), stuff_classes=(),
                    palette=[(220, 20, 60)])

    def __init__(self, extensions: Sequence[str] = IMAGE_EXTENSIONS, **kwargs) -> None:
        self.extensions = tuple(e.lower() for e in extensions)
        kwargs.setdefault('ann_file', '')
        kwargs.setdefault('filter_cfg', None)
        super().__init__(**kwargs)

    def load_data_list(self) -> List[dict]:
        folder = self.data_prefix.get('img', '')
        if not osp.isdir(folder):
            raise DataError(f'{folder}: no such image folder')
        paths = sorted(
            osp.join(root, name) for root, _, names in os.walk(folder) for name in names
            if name.lower().endswith(self.extensions))
        if not paths:
            raise DataError(f'{folder}: no images with suffix {self.extensions}')
        data_list = []
        for index, path in enumerate(paths):
            try:
                with Image.open(path) as img:
                    width, height = img.size
            except Exception as e:  # PIL raises several types for broken files
                raise DataError(f'{path}: not a readable image ({e})') from e
            data_list.append(dict(img_path=path, img_id=index, height=height, width=width,
                                  instances=[]))
        return data_list

    def filter_data(self) -> List[dict]:
        return self.data_list
