"""The work a training step requires, independent of how fast a machine runs it.

Three counts per module group, for one forward + backward pass:

* **matmul / conv FLOPs** (forward and backward apart) with ``torch.utils.flop_counter``'s formulas
  (``mm``, ``addmm``, ``bmm``, ``baddbmm``, convolutions and their backward, attention; 2 FLOPs
  per multiply-add). Element-wise ops, gathers and ``grid_sample`` are not counted. A backward op
  counts for the group whose forward created the autograd node it runs in.
* **deformable-attention samples**: every ``MultiScaleDeformableAttention`` call (mmcv's class or a
  subclass) reads ``bs x queries x heads x levels x points`` bilinear samples of ``head_dims``
  channels, 4 corners each, whatever kernel computes them (mmcv's ``grid_sample`` path, the
  plugin's gather, CUDA). Counted from the call's shapes by a forward pre-hook.
* **bytes saved for backward**: the distinct storages autograd keeps from the forward pass to the
  backward pass (``torch.autograd.graph.saved_tensors_hooks``), parameters excluded, attributed to
  the innermost group whose forward was running when it was saved. What the formulation has to
  hold in memory at the peak of a step, on top of weights, gradients and optimiser state.

Groups are module paths below the model (``'backbone'``, ``'panoptic_head.pixel_decoder'``, ...);
work counts for the innermost group whose forward is running, so each group reports its own work
without that of the groups it calls, and ``'(rest)'`` holds what ran outside every group (e.g. a
loss computed in a head's ``loss`` method rather than in a module).
"""
import copy
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Sequence, Tuple

import torch
from mmcv.ops import MultiScaleDeformableAttention
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

REST = '(rest)'


@dataclass
class StepCost:
    """Work of one training step, per group.

    Attributes:
        forward_flop (dict): group -> matmul / conv FLOPs of the forward pass.
        backward_flop (dict): group -> of the backward pass.
        msda_samples (dict): group -> deformable-attention bilinear samples (forward), each
            reading 4 corners of ``head_dims`` channels.
        msda_channels (dict): group -> ``head_dims`` of those samples (channels per sample).
        saved_bytes (dict): group -> bytes kept for the backward pass.
        num_params (int): parameters of the model.
    """
    forward_flop: Dict[str, float] = field(default_factory=dict)
    backward_flop: Dict[str, float] = field(default_factory=dict)
    msda_samples: Dict[str, float] = field(default_factory=dict)
    msda_channels: Dict[str, int] = field(default_factory=dict)
    saved_bytes: Dict[str, float] = field(default_factory=dict)
    num_params: int = 0

    def total(self, name: str) -> float:
        """Sum over groups of one of the dict attributes."""
        return float(sum(getattr(self, name).values()))


def default_groups(model: nn.Module) -> List[str]:
    """Module paths worth reporting: the backbone, the neck, every child of the head and the
    pixel decoder's encoder (a DETR-style model's ``encoder`` / ``decoder`` likewise)."""
    groups = []
    for name in ('backbone', 'neck', 'encoder', 'decoder'):
        if isinstance(getattr(model, name, None), nn.Module):
            groups.append(name)
    for head_name in ('panoptic_head', 'bbox_head', 'decode_head'):
        head = getattr(model, head_name, None)
        if not isinstance(head, nn.Module):
            continue
        groups.append(head_name)
        for child, module in head.named_children():
            groups.append(f'{head_name}.{child}')
            if isinstance(getattr(module, 'encoder', None), nn.Module):
                groups.append(f'{head_name}.{child}.encoder')
    return groups


class _GroupStack:
    """The groups whose forward is running (innermost last), from module hooks."""

    def __init__(self, model: nn.Module, groups: Sequence[str]):
        self.stack: List[str] = []
        self.handles = []
        modules = dict(model.named_modules())
        for group in groups:
            module = modules.get(group)
            if module is None:
                continue
            self.handles.append(module.register_forward_pre_hook(
                lambda *_, __g=group: self.stack.append(__g)))
            self.handles.append(module.register_forward_hook(
                lambda *_, __g=group: self._pop(__g)))

    def _pop(self, group: str) -> None:
        # innermost occurrence (a module may run inside itself through another path)
        index = len(self.stack) - 1 - self.stack[::-1].index(group)
        del self.stack[index]

    @property
    def current(self) -> str:
        return self.stack[-1] if self.stack else REST

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _tensors(out) -> List[Tensor]:
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for t in out if isinstance(t, Tensor)]
    return []


class _NodeGroups(TorchFunctionMode):
    """Forward: the group running when each autograd node was created."""

    def __init__(self, groups: _GroupStack):
        super().__init__()
        self.groups, self.of_node = groups, {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # a composite function (e.g. ``linear`` on a 3-d input: view, addmm, view) creates
        # several nodes: every node reachable from the outputs and not seen before is new
        todo = [t.grad_fn for t in _tensors(out) if t.grad_fn is not None]
        while todo:
            node = todo.pop()
            if node is None or node in self.of_node:
                continue
            self.of_node[node] = self.groups.current
            todo.extend(next_node for next_node, _ in node.next_functions)
        return out


class _GroupFlops(TorchDispatchMode):
    """matmul / conv FLOPs (``torch.utils.flop_counter``'s formulas) per group: in the forward
    pass the running group; in the backward pass the group that created the autograd node being
    run (REST when unknown)."""

    def __init__(self, groups: _GroupStack, nodes: _NodeGroups):
        super().__init__()
        self.groups, self.nodes = groups, nodes
        self.forward: Dict[str, float] = defaultdict(float)
        self.backward: Dict[str, float] = defaultdict(float)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            flops = float(formula(*args, **kwargs, out_val=out))
            node = torch._C._current_autograd_node()
            if node is None:
                self.forward[self.groups.current] += flops
            else:
                self.backward[self.nodes.of_node.get(node, REST)] += flops
        return out


def count_step(model: nn.Module, loss_fn: Callable[[], Tensor],
               groups: Sequence[str] = None) -> StepCost:
    """Count one ``loss_fn().backward()`` of ``model``.

    Args:
        model (nn.Module): the model ``loss_fn`` runs; its gradients are zeroed afterwards.
        loss_fn (callable): runs the forward pass and returns the scalar loss.
        groups (sequence[str], optional): module paths below the model (default
            :func:`default_groups`). Work is attributed to the innermost group whose forward is
            running (not to path prefixes: a criterion called from a head's ``loss`` method is
            not inside the head's forward).

    Returns:
        StepCost: per-group counts (keys: the groups and ``'(rest)'``).
    """
    groups = list(default_groups(model) if groups is None else groups)
    keys = groups + [REST]
    stack = _GroupStack(model, groups)
    samples, channels = defaultdict(float), {}

    def count_samples(module, args, kwargs):
        query = kwargs.get('query', args[0] if args else None)
        bs, nq = query.shape[:2] if getattr(module, 'batch_first', False) else query.shape[1::-1]
        samples[stack.current] += float(bs * nq * module.num_heads * module.num_levels *
                                        module.num_points)
        channels[stack.current] = module.embed_dims // module.num_heads
    hooks = [m.register_forward_pre_hook(count_samples, with_kwargs=True)
             for m in model.modules() if isinstance(m, MultiScaleDeformableAttention)]

    param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen, saved = set(), defaultdict(float)

    def pack(tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in param_storages and ptr not in seen and storage.nbytes():
            seen.add(ptr)
            saved[stack.current] += storage.nbytes()
        return tensor

    nodes = _NodeGroups(stack)
    flops = _GroupFlops(stack, nodes)
    try:
        with nodes, flops:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                loss = loss_fn()
            loss.backward()
    finally:
        stack.remove()
        for hook in hooks:
            hook.remove()
    model.zero_grad(set_to_none=True)
    return StepCost(forward_flop={k: flops.forward.get(k, 0.0) for k in keys},
                    backward_flop={k: flops.backward.get(k, 0.0) for k in keys},
                    msda_samples=dict(samples), msda_channels=channels,
                    saved_bytes={k: saved.get(k, 0.0) for k in keys},
                    num_params=sum(p.numel() for p in model.parameters()))


def merged(cost: StepCost, renames: Dict[str, str]) -> StepCost:
    """``cost`` with groups renamed (several may map to one label, their counts summed); groups
    not in ``renames`` keep their names."""
    out = copy.deepcopy(cost)
    for name in ('forward_flop', 'backward_flop', 'msda_samples', 'saved_bytes'):
        summed = defaultdict(float)
        for group, value in getattr(cost, name).items():
            summed[renames.get(group, group)] += value
        setattr(out, name, dict(summed))
    out.msda_channels = {renames.get(g, g): c for g, c in cost.msda_channels.items()}
    return out


def coarse_group(group: str) -> str:
    """A label shared by query-based segmenters (Mask DINO, Mask2Former): ``'backbone'``,
    ``'encoder'``, ``'pixel decoder (other)'``, ``'losses and matching'`` (a criterion module, loss
    modules, work outside every module) or ``'decoder and heads'``."""
    last = group.rsplit('.', 1)[-1]
    if group == 'backbone' or group == 'neck':
        return group
    if last == 'encoder':
        return 'encoder'
    if last == 'pixel_decoder':
        return 'pixel decoder (other)'
    if group == REST or last == 'criterion' or last.startswith('loss_'):
        return 'losses and matching'
    return 'decoder and heads'


def peak_live_bytes(step: Callable[[], object]) -> Tuple[float, float]:
    """Peak and final bytes of tensors allocated by ``step()`` and still alive, relative to its
    start (``torch.profiler`` memory events: every op's own allocations net of its frees, and the
    frees between ops, in time order). Weights and optimiser state that exist before the call are
    not counted; gradients created by it are.

    Returns:
        tuple: (peak, final) bytes.
    """
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    changes = sorted((e.time_range.start, e.cpu_memory_usage if e.name == '[memory]' else
                      e.self_cpu_memory_usage) for e in prof.events()
                     if e.name == '[memory]' or e.self_cpu_memory_usage)
    live = peak = 0.0
    for _, change in changes:
        live += change
        peak = max(peak, live)
    return peak, live
