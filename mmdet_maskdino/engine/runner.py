"""A Runner that validates a config before building anything."""
import copy
from typing import Union

from mmengine.config import Config, ConfigDict
from mmengine.runner import Runner

from mmdet.registry import DATASETS, RUNNERS
from ..utils.config_check import ConfigError, check_config
from .checkpoint import checkpoint_problem, find_resumable_checkpoint


@RUNNERS.register_module()
class CheckedRunner(Runner):
    """MMEngine's :class:`~mmengine.runner.Runner` preceded by :func:`check_config`.

    Configs select it with ``runner_type = 'mmdet.CheckedRunner'`` (the scope prefix is needed
    because runners are built before MMEngine's default scope is set); MMDetection's ``tools/train.py`` and
    ``tools/test.py`` (what ``mim train mmdet`` runs) build runners through the ``RUNNERS`` registry when
    ``runner_type`` is set, so the checks run there too. A config naming an unregistered type, a missing
    data root or an annotation file that is not COCO fails with a :class:`ConfigError` naming the config
    file and the offending field before a model or dataset is built.

    ``--resume`` without a path resumes from the newest *complete* checkpoint of the work dir
    (:func:`find_resumable_checkpoint`), saying which broken ones it skipped; a named checkpoint that
    is truncated or corrupt is an error naming the file.

    When the training dataset records the samples its pipeline drops (the checked datasets, see
    :class:`~mmdet_maskdino.datasets.DropTrackingMixin`) and ``custom_hooks`` has no
    :class:`DroppedSamplesHook`, one is added with its defaults, so drops are always counted.
    """

    @classmethod
    def from_cfg(cls, cfg: Union[Config, ConfigDict]) -> 'Runner':
        check_config(cfg)
        return super().from_cfg(with_dropped_samples_hook(cfg))


def with_dropped_samples_hook(cfg: Union[Config, ConfigDict]) -> Union[Config, ConfigDict]:
    """``cfg`` with a ``DroppedSamplesHook`` in ``custom_hooks`` when its training dataset (or a
    dataset it wraps) tracks pipeline drops and none is configured (``cfg`` is not modified)."""
    from ..datasets.dropped import DropTrackingMixin
    loader = cfg.get('train_dataloader')
    hooks = cfg.get('custom_hooks') or []
    if not loader or any(str(h.get('type', '')).split('.')[-1] == 'DroppedSamplesHook'
                         for h in hooks):
        return cfg
    if not any(isinstance(t, type) and issubclass(t, DropTrackingMixin)
               for t in map(_dataset_class, _dataset_types(loader.get('dataset')))):
        return cfg
    cfg = copy.deepcopy(cfg)
    cfg.custom_hooks = [*hooks, dict(type='mmdet.DroppedSamplesHook')]
    return cfg


def _dataset_types(dataset) -> list:
    """Types of a dataset config and of the datasets it wraps (``dataset`` / ``datasets``)."""
    if not isinstance(dataset, dict):
        return []
    inner = [dataset.get('dataset')] + list(dataset.get('datasets') or [])
    return [dataset.get('type')] + [t for d in inner for t in _dataset_types(d)]


def _dataset_class(name):
    if isinstance(name, type):
        return name
    if not isinstance(name, str):
        return None
    return DATASETS.get(name if '.' in name else f'mmdet.{name}')

    def load_or_resume(self) -> None:
        if not self._has_loaded and self._resume:
            if self._load_from is None:
                path, skipped = find_resumable_checkpoint(self.work_dir)
                for line in skipped:
                    self.logger.warning(f'not resuming from {line}')
                if path is None:
                    self.logger.warning(f'--resume: no complete checkpoint in {self.work_dir}; '
                                        'training from the start')
                    self._resume = False
                else:
                    self.logger.info(f'resuming from {path}, the newest complete checkpoint')
                    self._load_from = path
            elif not str(self._load_from).startswith(('http:', 'https:', 's3:')):
                problem = checkpoint_problem(self._load_from)
                if problem is not None:
                    raise ConfigError(f'cannot resume from {self._load_from}: {problem}')
        super().load_or_resume()
