"""Pipeline drops made visible: which image, which transform, and what replaced it.

When a training pipeline returns None (``FilterAnnotations(keep_empty=False)`` on an image with no
object left, a crop that leaves none, ...), MMEngine's ``BaseDataset.__getitem__`` fetches a random
other image in its place and says nothing. :class:`DropTrackingMixin` does the same replacement
(or raises, with ``on_dropped='error'``), but records every drop in the metainfo of the sample that
replaced it (:data:`DROPPED_KEY`). The record travels with the batch out of DataLoader workers, so
:class:`~mmdet_maskdino.engine.DroppedSamplesHook` counts drops in the main process, sums them
across ranks and logs them.
"""
from typing import Any, List, Optional, Tuple

from mmengine.structures import BaseDataElement

from .checks import DataError

__all__ = ['DROPPED_KEY', 'ON_DROPPED', 'DropTrackingMixin', 'dropped_records']

#: metainfo key of a sample: the drops it replaced, as dicts ``img_path``, ``transform``
DROPPED_KEY = 'dropped_samples'
#: what a dataset does when its pipeline drops a training sample
ON_DROPPED = ('replace', 'error')


def dropped_records(data_samples: Any) -> List[dict]:
    """The drop records carried by a batch's (or one sample's) data samples.

    Args:
        data_samples: A data sample, a list of them, or anything else (no records).

    Returns:
        list[dict]: ``img_path`` and ``transform`` of every dropped sample.
    """
    if isinstance(data_samples, BaseDataElement):
        data_samples = [data_samples]
    if not isinstance(data_samples, (list, tuple)):
        return []
    return [record for sample in data_samples if isinstance(sample, BaseDataElement)
            for record in sample.metainfo.get(DROPPED_KEY, [])]


class DropTrackingMixin:
    """For an MMEngine ``BaseDataset``: record (or refuse) the samples its pipeline drops.

    Put it before the dataset class (``class D(DropTrackingMixin, CocoDataset)``) and call
    ``_init_drop_tracking`` before the dataset's ``__init__``. Training samples are fetched as MMEngine
    does (a random other index replaces a dropped one, at most ``max_refetch`` times), but the
    pipeline's transforms run one by one, so the transform that returned None is known. In test
    mode, or with ``on_dropped='error'``, a drop raises :class:`DataError` naming the image and
    the transform.
    """

    on_dropped: str = 'replace'

    def _init_drop_tracking(self, on_dropped: str) -> None:
        if on_dropped not in ON_DROPPED:
            raise ValueError(f'on_dropped={on_dropped!r}: expected one of {ON_DROPPED}')
        self.on_dropped = on_dropped

    def __getitem__(self, idx: int) -> Any:
        if not self._fully_initialized:
            self.full_init()
        dropped = []
        for _ in range(self.max_refetch + 1):
            data, transform = self.prepare_data_traced(idx)
            if data is not None:
                return _with_records(data, dropped)
            record = dict(img_path=self._image_name(idx), transform=transform)
            if self.test_mode or self.on_dropped == 'error':
                mode = 'test-mode ' if self.test_mode else ''
                raise DataError(
                    f'{type(self).__name__} ({self.ann_file or self.data_root}): the {mode}'
                    f'pipeline dropped image {record["img_path"]} (transform {transform} returned '
                    'None)' + ('' if self.test_mode else "; on_dropped='error' refuses to replace "
                               "it (on_dropped='replace' trains on a random other image)"))
            dropped.append(record)
            idx = self._rand_another()
        raise DataError(
            f'{type(self).__name__} ({self.ann_file or self.data_root}): the pipeline dropped '
            f'{len(dropped)} images in a row, the last {dropped[-1]["img_path"]} (transform '
            f'{dropped[-1]["transform"]}); check the pipeline or the annotations')

    def prepare_data_traced(self, idx: int) -> Tuple[Any, Optional[str]]:
        """``prepare_data`` with the name of the transform that returned None, if one did.

        Returns:
            tuple: The pipeline's output (None when dropped) and the dropping transform's class
            name (None when not dropped).
        """
        data = self.get_data_info(idx)
        for transform in self.pipeline.transforms:
            data = transform(data)
            if data is None:
                return None, type(transform).__name__
        return data, None

    def _image_name(self, idx: int) -> str:
        info = self.get_data_info(idx)
        return str(info.get('img_path') or info.get('file_name') or f'index {idx}')


def _with_records(data: Any, dropped: List[dict]) -> Any:
    """``data`` with ``dropped`` added to its data sample's metainfo (when there is one)."""
    if not dropped:
        return data
    sample = data.get('data_samples') if isinstance(data, dict) else None
    if not isinstance(sample, BaseDataElement):
        raise DataError(f'the pipeline dropped {dropped[0]["img_path"]} (transform '
                        f'{dropped[0]["transform"]}), and its output has no data sample to '
                        "record it on (end the pipeline with a Pack* transform), or use "
                        "on_dropped='error'")
    sample.set_metainfo({DROPPED_KEY: dropped})
    return data
