"""A Runner that validates a config before building anything."""
from typing import Union

from mmengine.config import Config, ConfigDict
from mmengine.runner import Runner

from mmdet.registry import RUNNERS
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
    """

    @classmethod
    def from_cfg(cls, cfg: Union[Config, ConfigDict]) -> 'Runner':
        check_config(cfg)
        return super().from_cfg(cfg)

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
