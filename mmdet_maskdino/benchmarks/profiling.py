"""Where a training step spends its time: forward scopes per module and per criterion part, and
backward time per module.

Forward: each instrumented callable runs inside ``torch.profiler.record_function('<group>::<name>')``,
so ``torch.profiler`` reports its inclusive CPU time. Backward: the autograd engine runs a module's
backward ops after the gradient of its outputs arrives and before the gradient of its inputs
leaves; :class:`BackwardTimer` puts an identity autograd function on the module's tensor inputs and
outputs and records those two moments (wall clock, so run it with nothing else on the machine).
"""
import dataclasses
import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Tuple

import torch
from torch import Tensor, nn
from torch.profiler import record_function


def scoped(fn: Callable, name: str) -> Callable:
    """``fn`` run inside ``record_function(name)``."""

    def wrapper(*args, **kwargs):
        with record_function(name):
            return fn(*args, **kwargs)
    wrapper.__wrapped__ = fn
    return wrapper


class _Mark(torch.autograd.Function):
    """Identity in forward; in backward, tells ``timer`` that the gradient passed ``side``."""

    @staticmethod
    def forward(ctx, timer: 'BackwardTimer', key: Tuple[str, int], side: str, *tensors: Tensor):
        ctx.timer, ctx.key, ctx.side = timer, key, side
        return tuple(t.view_as(t) for t in tensors)

    @staticmethod
    def backward(ctx, *grads):
        ctx.timer.record(ctx.key, ctx.side)
        return (None, None, None, *grads)


class BackwardTimer:
    """Backward wall time of modules: from the first gradient reaching a call's outputs to the
    last gradient leaving through its inputs (the inputs that require a gradient; a call whose
    inputs need none, e.g. the first backbone layer, ends at the last op before the optimiser,
    measured as the end of ``backward()``).

    Use :meth:`attach` on modules before the forward pass and :meth:`finish` right after
    ``backward()``; :meth:`totals` gives ``{name: seconds}`` summed over calls.
    """

    def __init__(self) -> None:
        self.times: Dict[Tuple[str, int], Dict[str, float]] = defaultdict(dict)
        self.calls: Dict[str, int] = defaultdict(int)

    def record(self, key: Tuple[str, int], side: str) -> None:
        now = time.perf_counter()
        seen = self.times[key]
        if side == 'out':  # the first output gradient starts the call's backward
            seen['start'] = min(seen.get('start', now), now)
        else:  # the last input gradient ends it
            seen['end'] = max(seen.get('end', now), now)

    def _mark(self, key, side: str, args: tuple, kwargs: dict):
        """``args`` / ``kwargs`` with the differentiable tensors passed through :class:`_Mark`."""
        return _map_tensors((args, kwargs), lambda ts: _Mark.apply(self, key, side, *ts))

    def attach(self, name: str, module: nn.Module) -> None:
        """Time ``module``'s backward under ``name`` (its ``forward`` is wrapped)."""
        forward = module.forward

        def timed(*args, **kwargs):
            if not torch.is_grad_enabled():
                return forward(*args, **kwargs)
            key = (name, self.calls[name])
            self.calls[name] += 1
            args, kwargs = self._mark(key, 'in', args, kwargs)
            out = forward(*args, **kwargs)
            return _map_tensors(out, lambda ts: _Mark.apply(self, key, 'out', *ts))
        module.forward = timed

    def finish(self) -> None:
        """Close calls whose inputs needed no gradient at the end of ``backward()``."""
        now = time.perf_counter()
        for seen in self.times.values():
            if 'start' in seen and 'end' not in seen:
                seen['end'] = now

    def totals(self) -> Dict[str, float]:
        out: Dict[str, float] = defaultdict(float)
        for (name, _), seen in self.times.items():
            if 'start' in seen:
                out[name] += seen['end'] - seen['start']
        return dict(out)

    def reset(self) -> None:
        self.times.clear()
        self.calls.clear()


def _map_tensors(out, fn: Callable[[List[Tensor]], Tuple[Tensor, ...]]):
    """Apply ``fn`` once to every differentiable tensor of a nested structure (tuples, lists,
    dicts, NamedTuples, dataclasses) and rebuild the structure around the results."""
    leaves: List[Tensor] = []

    def children(x) -> list:
        if isinstance(x, (list, tuple)):
            return list(x)
        if isinstance(x, dict):
            return list(x.values())
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            return [getattr(x, f.name) for f in dataclasses.fields(x)]
        return []

    def collect(x) -> None:
        if isinstance(x, Tensor):
            if x.requires_grad:
                leaves.append(x)
        else:
            for v in children(x):
                collect(v)
    collect(out)
    if not leaves:
        return out
    mapped = dict(zip(map(id, leaves), fn(leaves)))

    def rebuild(x):
        if isinstance(x, Tensor):
            return mapped.get(id(x), x)
        if isinstance(x, tuple) and hasattr(x, '_fields'):  # NamedTuple
            return type(x)(*[rebuild(v) for v in x])
        if isinstance(x, (list, tuple)):
            return type(x)(rebuild(v) for v in x)
        if isinstance(x, dict):
            return {k: rebuild(v) for k, v in x.items()}
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            return dataclasses.replace(x, **{f.name: rebuild(getattr(x, f.name))
                                             for f in dataclasses.fields(x) if f.init})
        return x
    return rebuild(out)


@contextmanager
def patched(owner, name: str, scope: str) -> Iterator[None]:
    """Temporarily replace ``owner.name`` with its :func:`scoped` version (a classmethod or
    staticmethod of a class is restored as the descriptor it was)."""
    raw = vars(owner).get(name, None) if hasattr(owner, '__dict__') else None
    if isinstance(raw, (classmethod, staticmethod)):  # keep it a descriptor of its kind
        setattr(owner, name, type(raw)(scoped(raw.__func__, scope)))
    else:
        setattr(owner, name, scoped(getattr(owner, name), scope))
    try:
        yield
    finally:
        if raw is not None:
            setattr(owner, name, raw)
        else:
            delattr(owner, name)  # it was inherited


def profile_rows(events, scopes_prefix: str, repeats: int, total_us: float) -> List[tuple]:
    """``(name, calls per run, ms per run, share)`` of the profiler events named
    ``<scopes_prefix>...`` (inclusive CPU time), sorted by name."""
    rows = []
    for e in sorted((e for e in events if e.key.startswith(scopes_prefix)), key=lambda e: e.key):
        rows.append((e.key[len(scopes_prefix):], e.count // repeats,
                     e.cpu_time_total / 1e3 / repeats, e.cpu_time_total / total_us))
    return rows


def print_op_table(events, total_us: float, repeats: int, top: int, unit: str = 'run',
                   scope_prefixes: Tuple[str, ...] = ()) -> None:
    """Markdown table of the ``top`` ops by self CPU time per ``unit`` (run / step), leaving out
    the profiler events of the tools' own scopes (names starting with ``scope_prefixes``)."""
    print(f'\n| op | self time per {unit} (ms) | share | calls per {unit} |')
    print('|---|---|---|---|')
    ops = sorted((e for e in events if not e.key.startswith(scope_prefixes)),
                 key=lambda e: -e.self_cpu_time_total)[:top]
    for e in ops:
        print(f'| {e.key} | {e.self_cpu_time_total / 1e3 / repeats:.1f} | '
              f'{e.self_cpu_time_total / total_us:.1%} | {e.count // repeats} |')
