"""The pieces of ``tools/analysis_tools/check_cuda.py`` (the one-command GPU check): deformable
attention inputs with odd sizes, the CUDA-vs-CPU comparison, and a mixed-precision training step
against fp32. Every function runs on any device, so the CPU side is tested without a GPU."""
import math
from typing import Callable, Dict, List, Sequence, Tuple

import torch
from torch import Tensor

#: odd level sizes (not multiples of anything), several heads / points, a 1x1 level
ODD_LEVELS = ((23, 37), (12, 19), (6, 10), (1, 1))


def msda_inputs(bs: int = 2, num_queries: int = 37, num_heads: int = 8, head_dims: int = 32,
                levels: Sequence[Tuple[int, int]] = ODD_LEVELS, num_points: int = 4,
                seed: int = 0) -> Dict[str, Tensor]:
    """Random inputs of multi-scale deformable attention (fp64, CPU).

    Sampling locations lie in [-0.1, 1.1] (some outside the maps, where the op pads with zeros);
    attention weights are softmax-normalised over levels x points.

    Returns:
        dict: ``value`` (bs, num_value, num_heads, head_dims), ``spatial_shapes`` (L, 2) long,
        ``level_start_index`` (L,) long, ``sampling_locations`` (bs, nq, heads, L, points, 2),
        ``attention_weights`` (bs, nq, heads, L, points).
    """
    gen = torch.Generator().manual_seed(seed)
    shapes = torch.tensor(levels, dtype=torch.long)
    areas = shapes.prod(1)
    start = torch.cat([areas.new_zeros(1), areas.cumsum(0)[:-1]])
    num_levels = len(levels)
    weights = torch.rand(bs, num_queries, num_heads, num_levels * num_points, generator=gen,
                         dtype=torch.float64)
    return dict(
        value=torch.randn(bs, int(areas.sum()), num_heads, head_dims, generator=gen,
                          dtype=torch.float64),
        spatial_shapes=shapes, level_start_index=start,
        sampling_locations=torch.rand(bs, num_queries, num_heads, num_levels, num_points, 2,
                                      generator=gen, dtype=torch.float64) * 1.2 - 0.1,
        attention_weights=weights.softmax(-1).view(bs, num_queries, num_heads, num_levels,
                                                   num_points))


def forward_and_grads(op: Callable[..., Tensor], inputs: Dict[str, Tensor], device: str,
                      dtype: torch.dtype, seed: int = 1) -> Dict[str, Tensor]:
    """Run ``op`` (deformable attention's contract) on ``inputs`` cast to ``device`` / ``dtype``,
    backward a fixed random upstream gradient, and return the output and the gradients of
    ``value``, ``sampling_locations`` and ``attention_weights`` (float64, CPU)."""
    leaves = {k: (v.detach().to(device=device, dtype=dtype).clone().requires_grad_(True)
                  if v.is_floating_point() else v.to(device)) for k, v in inputs.items()}
    out = op(leaves['value'], leaves['spatial_shapes'], leaves['level_start_index'],
             leaves['sampling_locations'], leaves['attention_weights'])
    gen = torch.Generator().manual_seed(seed)
    upstream = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    out.backward(upstream.to(device=device, dtype=out.dtype))
    result = {'output': out.detach()}
    for k in ('value', 'sampling_locations', 'attention_weights'):
        result[f'grad {k}'] = leaves[k].grad
    return {k: v.double().cpu() for k, v in result.items()}


def differences(ours: Dict[str, Tensor], reference: Dict[str, Tensor]) -> List[dict]:
    """Per key: max absolute difference, and that difference relative to the reference's max
    magnitude (a scale-free figure for outputs and gradients of any size)."""
    rows = []
    for key, ref in reference.items():
        diff = (ours[key] - ref).abs().max().item()
        scale = ref.abs().max().item()
        rows.append(dict(item=key, max_abs=diff, rel_to_max=diff / scale if scale else diff,
                         finite=bool(torch.isfinite(ours[key]).all())))
    return rows


def loss_step(model, batch: dict, device: str, dtype: torch.dtype = None,
              seed: int = 0) -> Dict[str, float]:
    """Losses of one training forward under autocast(``dtype``) (None: fp32), with the random
    draws (DN noise, points) seeded, then backward; adds ``grad_norm`` (global l2, fp32)."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
        losses = model(**batch, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    norms = [p.grad.float().norm() for p in model.parameters() if p.grad is not None]
    out = {k: v.item() for k, v in losses.items()}
    out['grad_norm'] = torch.stack(norms).norm().item()
    return out


def compare_losses(amp: Dict[str, float], fp32: Dict[str, float]) -> dict:
    """Total loss, its relative difference, the worst term's and the gradient norm's, and
    whether every amp value is finite."""
    keys = [k for k in fp32 if k != 'grad_norm']
    total32, total_amp = sum(fp32[k] for k in keys), sum(amp[k] for k in keys)
    worst = max(keys, key=lambda k: abs(amp[k] - fp32[k]) / max(abs(fp32[k]), 1e-2))
    return dict(
        total_fp32=total32, total_amp=total_amp,
        total_rel=abs(total_amp - total32) / max(abs(total32), 1e-12), worst_term=worst,
        worst_rel=abs(amp[worst] - fp32[worst]) / max(abs(fp32[worst]), 1e-2),
        grad_norm_rel=abs(amp['grad_norm'] - fp32['grad_norm']) / max(fp32['grad_norm'], 1e-12),
        finite=all(map(math.isfinite, amp.values())))
