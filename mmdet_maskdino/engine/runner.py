"""A Runner that validates a config before building anything."""
from typing import Union

from mmengine.config import Config, ConfigDict
from mmengine.runner import Runner

from mmdet.registry import RUNNERS
from ..utils.config_check import check_config


@RUNNERS.register_module()
class CheckedRunner(Runner):
    """MMEngine's :class:`~mmengine.runner.Runner` preceded by :func:`check_config`.

    Configs select it with ``runner_type = 'mmdet.CheckedRunner'`` (the scope prefix is needed
    because runners are built before MMEngine's default scope is set); MMDetection's ``tools/train.py`` and
    ``tools/test.py`` (what ``mim train mmdet`` runs) build runners through the ``RUNNERS`` registry when
    ``runner_type`` is set, so the checks run there too. A config naming an unregistered type, a missing
    data root or an annotation file that is not COCO fails with a :class:`ConfigError` naming the config
    file and the offending field before a model or dataset is built.
    """

    @classmethod
    def from_cfg(cls, cfg: Union[Config, ConfigDict]) -> 'Runner':
        check_config(cfg)
        return super().from_cfg(cfg)
