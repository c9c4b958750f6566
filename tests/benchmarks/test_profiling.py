"""The training profiler's helpers: backward timing per module and structure-preserving marks."""
import dataclasses
import time
from typing import NamedTuple

import torch
from torch import nn

from mmdet_maskdino.benchmarks.profiling import BackwardTimer, _map_tensors, patched


class _SlowBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        time.sleep(0.05)
        return grad * 2


class Slow(nn.Module):
    def forward(self, x):
        return _SlowBackward.apply(x)


def test_backward_time_lands_on_the_module_that_spends_it():
    torch.manual_seed(0)
    first, slow, last = nn.Linear(4, 4), Slow(), nn.Linear(4, 1)
    x = torch.randn(3, 4)
    expected = torch.autograd.grad(last(slow(first(x))).sum(), list(first.parameters()))
    timer = BackwardTimer()
    for name, m in (('first', first), ('slow', slow), ('last', last)):
        timer.attach(name, m)
    out = last(slow(first(x)))
    grads = torch.autograd.grad(out.sum(), list(first.parameters()))
    timer.finish()
    for a, b in zip(grads, expected):  # the marks are identities
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    totals = timer.totals()
    assert totals['slow'] >= 0.05
    assert totals['last'] < 0.02 and totals['first'] < 0.02
    assert timer.calls == {'first': 1, 'slow': 1, 'last': 1}
    with torch.no_grad():  # nothing recorded without gradients
        timer.reset()
        last(slow(first(x)))
        assert timer.totals() == {} and timer.calls == {}


class Pair(NamedTuple):
    a: torch.Tensor
    b: list


@dataclasses.dataclass
class Holder:
    pair: Pair
    plain: torch.Tensor
    note: str = 'kept'


def test_map_tensors_keeps_structure_and_skips_tensors_without_grad():
    w = torch.ones(2, requires_grad=True)
    plain = torch.zeros(2)
    value = Holder(Pair(w * 1, [w * 2, {'k': w * 3}, 7]), plain)
    seen = []

    def double(tensors):
        seen.extend(tensors)
        return tuple(t * 2 for t in tensors)
    out = _map_tensors(value, double)
    assert len(seen) == 3 and isinstance(out, Holder) and isinstance(out.pair, Pair)
    assert out.plain is plain and out.note == 'kept' and out.pair.b[2] == 7
    assert out.pair.a.tolist() == [2, 2] and out.pair.b[0].tolist() == [4, 4]
    assert out.pair.b[1]['k'].tolist() == [6, 6]
    assert _map_tensors((plain, 'x'), double) == (plain, 'x')


class _Drawn:
    @classmethod
    def draw(cls, x):
        return cls.__name__, x


class _Child(_Drawn):
    pass


def test_patched_scopes_calls_and_restores_classmethods_and_inherited_attributes():
    with torch.profiler.profile() as prof:
        with patched(_Drawn, 'draw', 'scope/draw'), patched(_Child, 'draw', 'scope/child'):
            assert _Drawn.draw(1) == ('_Drawn', 1) and _Child.draw(2) == ('_Child', 2)
    names = [e.key for e in prof.key_averages()]
    assert 'scope/draw' in names and 'scope/child' in names
    assert isinstance(vars(_Drawn)['draw'], classmethod) and 'draw' not in vars(_Child)
    assert _Child.draw(3) == ('_Child', 3)  # bound to the subclass again
