"""Count, log and bound the training samples a pipeline dropped (see
:mod:`mmdet_maskdino.datasets.dropped`)."""
from typing import Optional, Sequence

import torch
from mmengine import dist
from mmengine.hooks import Hook

from mmdet.registry import HOOKS
from ..datasets.dropped import dropped_records

__all__ = ['DroppedSamplesHook']

#: the message-hub key: ``data/dropped`` in the training log line and the scalar backends
SCALAR = 'train/data/dropped'


@HOOKS.register_module()
class DroppedSamplesHook(Hook):
    """Counts the training samples the pipeline dropped (and a random other image replaced).

    Datasets with :class:`~mmdet_maskdino.datasets.DropTrackingMixin` (the checked datasets) record
    each drop on the sample that replaced it; this hook reads the records of every batch in the main
    process (so drops made in DataLoader workers are counted), sums them across ranks, and:

    * logs each drop through MMEngine's logger: the image and the transform that returned None
      (records of all ranks, gathered, are logged by rank 0);
    * keeps a running count, ``data/dropped``, in the message hub: it appears in the training log
      line and in the visualizer's scalar backends;
    * warns once when the dropped share of all fetched samples, ``dropped / (dropped + used)``,
      passes ``warn_ratio``.

    :class:`~mmdet_maskdino.engine.CheckedRunner` adds it when the training dataset tracks drops
    and the config has none. Counts start at zero in each run (also when resuming).

    Args:
        warn_ratio (float): Dropped share above which to warn (default 0.01).
        log_each (bool): Log every dropped image (default True); the count is kept either way.
    """

    priority = 'NORMAL'  # before LoggerHook (BELOW_NORMAL) reads the message hub

    def __init__(self, warn_ratio: float = 0.01, log_each: bool = True) -> None:
        if not 0 <= warn_ratio <= 1:
            raise ValueError(f'warn_ratio={warn_ratio}: expected a share in [0, 1]')
        self.warn_ratio, self.log_each = warn_ratio, log_each
        self.dropped = self.used = 0
        self.warned = False

    def before_train(self, runner) -> None:
        self.dropped = self.used = 0
        self.warned = False
        custom_cfg = runner.log_processor.custom_cfg
        key = SCALAR.split('/', 1)[1]
        if not any(c.get('data_src') == key for c in custom_cfg):  # the running count itself
            custom_cfg.append(dict(data_src=key, method_name='current'))
        runner.message_hub.update_scalar(SCALAR, 0)

    def after_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        samples = data_batch.get('data_samples') if isinstance(data_batch, dict) else None
        records = dropped_records(samples)
        counts = torch.tensor([len(records), len(samples) if isinstance(samples, Sequence) else 0],
                              dtype=torch.float64)
        if dist.get_world_size() > 1:  # every rank calls: same iterations everywhere
            dist.all_reduce(counts, op='sum')  # (mmengine moves it to the backend's device)
            if counts[0] > 0:
                records = [r for rank in dist.all_gather_object(records) for r in rank]
        new, used = (int(v) for v in counts.tolist())
        self.dropped += new
        self.used += used
        runner.message_hub.update_scalar(SCALAR, self.dropped)
        if new and self.log_each:
            for record in records:
                runner.logger.info(f'pipeline dropped {record["img_path"]} (transform '
                                   f'{record["transform"]} returned None); a random other '
                                   'image replaced it')
        share = self.dropped / max(self.dropped + self.used, 1)
        if share > self.warn_ratio and not self.warned:
            self.warned = True
            runner.logger.warning(
                f'{self.dropped} of {self.dropped + self.used} fetched training samples '
                f'({share:.1%}) were dropped by the pipeline and replaced by random other images '
                f'(more than warn_ratio={self.warn_ratio:.1%}): the model trains on a different '
                "distribution than configured. Check the transforms named above, or set the "
                "dataset's on_dropped='error'.")

