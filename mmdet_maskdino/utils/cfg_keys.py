"""Reject unknown keys in ``train_cfg`` / ``test_cfg`` dicts, with a close-match suggestion.

Those dicts are read with ``cfg.get(key, default)``, so a typo (``max_per_imag``) silently falls back to
the default. Modules that own such a dict validate it once, at construction.
"""
import difflib
from typing import Any, Iterable, Mapping, Optional

from .config_check import ConfigError

__all__ = ['check_cfg_keys']


def check_cfg_keys(cfg: Optional[Mapping[str, Any]], known: Iterable[str], where: str) -> None:
    """Raise :class:`ConfigError` for keys of ``cfg`` that are not in ``known``.

    Args:
        cfg (Mapping, optional): The dict to check (None: nothing to check).
        known (Iterable[str]): The keys the owner reads.
        where (str): Its place in the config, for the message (e.g. ``'model.test_cfg'``).

    Raises:
        ConfigError: Naming every unknown key, a close match when there is one, and the known keys.
    """
    if not cfg:
        return
    known = sorted(set(known))
    problems = []
    for key in cfg:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), known, n=1)
        problems.append(f'{key!r}' + (f" (did you mean '{close[0]}'?)" if close else ''))
    if problems:
        raise ConfigError(f'{where}: unknown key(s) {", ".join(problems)}; known keys: '
                          f'{", ".join(known)}')
