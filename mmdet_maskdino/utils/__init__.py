from .checkpoint_compat import mmengine_safe_globals, register_mmengine_safe_globals
from .config_check import ConfigError, check_config
from .dist import close_distributed, init_cpu_distributed

__all__ = ['register_mmengine_safe_globals', 'mmengine_safe_globals', 'check_config', 'ConfigError',
           'init_cpu_distributed', 'close_distributed']
