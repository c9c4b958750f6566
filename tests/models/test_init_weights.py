"""Iteration 0 as the authors': initial parameter distributions and the optimiser rule against
``../shared/fixtures/init_upstream_r50.json`` (FIXTURES-INIT.md), and a guard that
``init_weights()`` leaves no parameter constant unless upstream initialises it so.

The json holds statistics of one random draw of upstream's initialisation, so the comparisons are
of distributions: the standard deviation within 10% (or three standard errors of the difference of
two draws' sample deviations, for small tensors), the zero fraction within 0.02, the bounds of a
uniform within 5%, the mean within six standard errors; constant initialisations exactly.
"""
import glob
import json
import math
import os.path as osp
import re
from typing import Dict

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from torch import nn

from mmdet.registry import MODELS
from mmdet_maskdino.testing import REPO_ROOT, get_repo_config

INIT_JSON = osp.join(REPO_ROOT, '..', 'shared', 'fixtures', 'init_upstream_r50.json')
needs_json = pytest.mark.skipif(not osp.isfile(INIT_JSON),
                                reason=f'{INIT_JSON} absent (the shared fixtures folder)')


def _upstream() -> Dict[str, dict]:
    with open(INIT_JSON) as f:
        return json.load(f)['params']


def _build(cfg: Config, seed: int = 0) -> nn.Module:
    """The config's detector after ``init_weights()``, pretrained backbones left random."""
    init_default_scope('mmdet')
    cfg.model.backbone.init_cfg = None  # no download; the backbone is not compared
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def _stats(t: torch.Tensor) -> dict:
    t = t.detach().double().flatten()
    # sample std with Bessel's correction, as the json (torch.std's default)
    return dict(mean=t.mean().item(), std=t.std().item() if t.numel() > 1 else 0.0,
                min=t.min().item(), max=t.max().item(),
                zero_fraction=(t == 0).double().mean().item())


def _is_uniform(stats: dict) -> bool:
    """A uniform draw has max |x| = sqrt(3) std; a normal draw of >= 80 values reaches > 2.2 std."""
    return stats['std'] > 0 and max(-stats['min'], stats['max']) < 2.0 * stats['std']


def _compare(name: str, mine: torch.Tensor, ref: dict) -> list:
    """Differences between the plugin's tensor and upstream's recorded draw (empty: same)."""
    if list(mine.shape) != ref['shape']:
        return [f'{name}: shape {list(mine.shape)} vs upstream {ref["shape"]}']
    got = _stats(mine)
    n = mine.numel()
    if ref['std'] == 0 or 'sampling_offsets.bias' in name:  # constant / deterministic grid
        bad = [k for k in ('mean', 'std', 'min', 'max', 'zero_fraction')
               if not math.isclose(got[k], ref[k], rel_tol=1e-5, abs_tol=1e-6)]
        return [f'{name}: {k} {got[k]:.6g} vs upstream {ref[k]:.6g} (deterministic init)'
                for k in bad]
    problems = []
    # relative standard error of a sample std: sqrt((kurtosis - 1) / 4n); 1.8 (uniform), 3 (normal)
    kurtosis = 1.8 if _is_uniform(ref) else 3.0
    std_tol = max(0.10, 3 * math.sqrt(2 * (kurtosis - 1) / (4 * n)))
    if abs(got['std'] - ref['std']) > std_tol * ref['std']:
        problems.append(f'{name}: std {got["std"]:.4g} vs upstream {ref["std"]:.4g}')
    if abs(got['zero_fraction'] - ref['zero_fraction']) > 0.02:
        problems.append(f'{name}: zero fraction {got["zero_fraction"]:.3f} vs '
                        f'{ref["zero_fraction"]:.3f}')
    if abs(got['mean'] - ref['mean']) > 6 * ref['std'] * math.sqrt(2 / n):
        problems.append(f'{name}: mean {got["mean"]:.4g} vs upstream {ref["mean"]:.4g} '
                        f'(std {ref["std"]:.3g}, n {n})')
    if got['std'] == 0:
        problems.append(f'{name}: constant {got["mean"]:.4g}, upstream random (std '
                        f'{ref["std"]:.4g})')
    elif _is_uniform(ref) != _is_uniform(got):
        problems.append(f'{name}: {"uniform" if _is_uniform(got) else "not uniform"} '
                        f'(max |x| / std {max(-got["min"], got["max"]) / got["std"]:.2f}), '
                        f'upstream {"uniform" if _is_uniform(ref) else "not uniform"}')
    elif _is_uniform(ref):
        for k in ('min', 'max'):
            if abs(got[k] - ref[k]) > 0.05 * abs(ref[k]):
                problems.append(f'{name}: {k} {got[k]:.4g} vs upstream {ref[k]:.4g}')
    return problems


def _head_params(model: nn.Module) -> Dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if n.startswith('panoptic_head.')}


@pytest.fixture(scope='module')
def r50():
    """configs/maskdino_r50.py's config and detector after ``init_weights()``."""
    cfg = get_repo_config('maskdino_r50.py')
    return cfg, _build(cfg.copy())


@needs_json
def test_r50_head_init_is_upstreams_distribution(r50):
    """All 344 head tensors of configs/maskdino_r50.py against upstream's draw."""
    upstream = _upstream()
    mine = _head_params(r50[1])
    assert sorted(mine) == sorted(upstream), 'head parameters differ from upstream\'s set'
    problems = [p for name, ref in upstream.items() for p in _compare(name, mine[name], ref)]
    assert not problems, '\n'.join(problems)


@needs_json
@pytest.mark.parametrize('config', ['maskdino/maskdino_r50_8xb2-lsj-50e_coco-panoptic.py',
                                   'maskdino/maskdino_r50_8xb2-160k_ade20k-semantic.py'])
def test_panoptic_and_semantic_heads_share_upstreams_init(config):
    """The keys the panoptic / semantic heads share with the instance model (same name and
    shape: all but the class head, and for the one-stage semantic model the query-selection
    layers it does not have) have upstream's distributions."""
    upstream = _upstream()
    mine = _head_params(_build(get_repo_config(config)))
    shared = [n for n in upstream if n in mine and list(mine[n].shape) == upstream[n]['shape']]
    assert len(shared) >= 330, f'only {len(shared)} of the instance head\'s keys in {config}'
    problems = [p for name in shared for p in _compare(name, mine[name], upstream[name])]
    assert not problems, '\n'.join(problems)


@needs_json
def test_optimiser_rule_is_upstreams(r50):
    """Every head parameter's lr and weight decay from the config's built optim wrapper equal
    upstream's ``build_optimizer`` (AdamW 1e-4, decay 0.05; 0 for norm layers and nn.Embedding,
    so ``level_embed``, a plain Parameter, decays)."""
    upstream = _upstream()
    cfg, model = r50
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    group_of = {id(p): g for g in wrapper.optimizer.param_groups for p in g['params']}
    wrong = []
    for name, p in _head_params(model).items():
        group = group_of[id(p)]
        ref = upstream[name]
        if not (math.isclose(group['lr'], ref['lr']) and
                math.isclose(group['weight_decay'], ref['weight_decay'])):
            wrong.append(f'{name}: lr {group["lr"]:g} wd {group["weight_decay"]:g}, upstream lr '
                         f'{ref["lr"]:g} wd {ref["weight_decay"]:g}')
    assert not wrong, '\n'.join(wrong)
    assert group_of[id(model.panoptic_head.pixel_decoder.level_embed)]['weight_decay'] == 0.05
    backbone_lrs = {group_of[id(p)]['lr'] for n, p in model.named_parameters()
                    if n.startswith('backbone.') and p.requires_grad}
    assert len(backbone_lrs) == 1 and math.isclose(backbone_lrs.pop(), 1e-5)
    assert wrapper.clip_grad_kwargs == dict(max_norm=0.01, norm_type=2)


# ---------------------------------------------------------------- the guard for every config
SHIPPED = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'), recursive=True) +
                 glob.glob(osp.join(REPO_ROOT, 'projects', '*', 'configs', '*.py')))
#: every Mask DINO config of the repository (mmdet baselines under configs/zoo excepted)
MASKDINO_CONFIGS = [c for c in SHIPPED if '/zoo/' not in c and 'mask2former' not in c]
NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def _pattern(name: str) -> str:
    """A parameter name with the indices of repeated layers and levels blanked."""
    return re.sub(r'(layers|input_projs)\.\d+\.(?=\D)', r'\1.*.', name)


def _upstream_constant_patterns() -> set:
    return {_pattern(n) for n, ref in _upstream().items() if ref['std'] == 0}


def constant_parameters(model: nn.Module, allowed: set) -> list:
    """Floating-point parameters that hold a single value after ``init_weights()``, except norm
    layers' (upstream and mmdet initialise them 1 / 0), frozen ones and the ``allowed`` patterns
    (what upstream initialises to a constant)."""
    in_norm = {f'{m}.{p}' if m else p for m, mod in model.named_modules()
               if isinstance(mod, NORMS) for p, _ in mod.named_parameters(recurse=False)}
    found = []
    for name, p in model.named_parameters():
        if (not p.is_floating_point() or not p.requires_grad or name in in_norm
                or _pattern(name) in allowed or p.numel() < 2):
            continue
        if bool((p == p.flatten()[0]).all()):
            found.append(f'{name} {tuple(p.shape)} = {p.flatten()[0].item():.4g}')
    return found


def _distinct_models() -> Dict[str, Config]:
    """One config per distinct model (the 12 / 24 / 50-epoch schedules share theirs)."""
    models = {}
    for path in MASKDINO_CONFIGS:
        cfg = Config.fromfile(path)
        models.setdefault(repr(cfg.model.to_dict()), (osp.relpath(path, REPO_ROOT), cfg))
    return dict(models.values())


@needs_json
def test_init_weights_leaves_nothing_constant():
    """No floating-point parameter of any shipped Mask DINO config is constant after
    ``init_weights()`` unless upstream initialises it so (a ``*_init`` helper applied to a bare
    Parameter does nothing, as ``normal_init(level_embed)`` did). Pretrained backbones are
    loaded, not initialised, and are left out."""
    allowed = _upstream_constant_patterns()
    problems = []
    models = _distinct_models()
    for name, cfg in models.items():
        if (cfg.model.backbone.get('init_cfg') or {}).get('type') == 'Pretrained':
            # the backbone is loaded, not initialised: only the head is checked
            init_default_scope('mmdet')
            torch.manual_seed(0)
            model = nn.Module()
            model.panoptic_head = MODELS.build(cfg.model.panoptic_head)
            model.panoptic_head.init_weights()
        else:
            model = _build(cfg)
        problems += [f'{name}: {p}' for p in constant_parameters(model, allowed)]
    assert len(models) >= 9, sorted(models)
    assert not problems, 'constant after init_weights():\n' + '\n'.join(problems)


def test_guard_catches_an_init_helper_that_does_nothing():
    """The guard itself: a bare Parameter given to mmengine's ``normal_init`` stays zero."""
    from mmengine.model import normal_init
    model = nn.Module()
    model.linear = nn.Linear(4, 4)
    model.level_embed = nn.Parameter(torch.zeros(3, 4))
    normal_init(model.level_embed, mean=0, std=1)  # sets .weight only: a no-op here
    assert constant_parameters(model, set()) == ['level_embed (3, 4) = 0']
    nn.init.normal_(model.level_embed)
    assert constant_parameters(model, set()) == []
