"""Fixture A (the authors' inference pass) under bf16 autocast: how far the plugin's outputs move
from upstream's recorded fp32 ones, next to the plugin's own fp32 differences.

Query selection ranks encoder tokens by bf16 class logits, so a few tokens near the top-k boundary
(or tied in order) change; queries are therefore paired by the encoder token they were selected
from. Prints the selected tokens both runs share, then per output (final / interm class logits,
boxes and masks) the largest and mean absolute difference from upstream over the paired queries, in
fp32 and in bf16 autocast, and how many of the top-scored (token, class) pairs stay the same.

Example::

    python tools/analysis_tools/fixture_a_bf16.py
"""
import torch

import mmdet_maskdino.models.dense_heads.maskdino_head as head_module
from mmdet_maskdino.testing import FIXTURE_A, build_fixture_a_head, run_fixture_a


def run_recording_tokens(head, fx, dtype=None):
    """``run_fixture_a`` plus the (bs, k) encoder token index of every selected query."""
    select, seen = head_module.select_queries, []

    def recording(*args, **kwargs):
        out = select(*args, **kwargs)
        seen.append(out.index)
        return out
    head_module.select_queries = recording
    try:
        return run_fixture_a(head, fx, autocast_dtype=dtype), seen[-1]
    finally:
        head_module.select_queries = select


def pairs(tokens_a, tokens_b):
    """Per image, (positions in a, positions in b) of the queries selected from the same token."""
    out = []
    for a, b in zip(tokens_a.tolist(), tokens_b.tolist()):
        where = {t: j for j, t in enumerate(b)}
        shared = [(i, where[t]) for i, t in enumerate(a) if t in where]
        out.append(([i for i, _ in shared], [j for _, j in shared]))
    return out


def rows(ours: dict, ref: dict, paired, prefix: str = ''):
    """(name, max abs, mean abs) over the paired queries (``paired``: per image, positions in
    ``ref``'s order and in ``ours``)."""
    for key in ('pred_logits', 'pred_boxes', 'pred_masks'):
        if ours.get(key) is None or ref.get(key) is None:
            continue
        diff = torch.cat([(ours[key][b, mine] - ref[key][b, theirs].float()).abs().flatten()
                          for b, (theirs, mine) in enumerate(paired)])
        yield prefix + key, diff.max().item(), diff.mean().item()


def top_instances(out: dict, tokens, k: int = 30) -> list:
    """Per image, the (encoder token, class) pairs of the ``k`` best sigmoid scores (what
    instance post-processing keeps, named by token so that query order does not matter)."""
    scores = out['pred_logits'].sigmoid().flatten(1)
    classes = out['pred_logits'].size(-1)
    return [{(tok[i // classes], i % classes) for i in s.topk(k).indices.tolist()}
            for s, tok in zip(scores, tokens.tolist())]


def main() -> None:
    fx = torch.load(FIXTURE_A, weights_only=True)
    head = build_fixture_a_head(fx)
    ref = fx['outputs']
    fp32, tokens32 = run_recording_tokens(head, fx)
    bf16, tokens16 = run_recording_tokens(head, fx, torch.bfloat16)
    ref_tokens = fx['debug']['predictor.topk_proposals']
    k = ref_tokens.size(1)
    p32, p16 = pairs(ref_tokens, tokens32), pairs(ref_tokens, tokens16)
    print(f'\n### Fixture A under bf16 autocast (pixel decoder and decoder layers stay fp32)\n\n'
          f'selected encoder tokens shared with upstream, per image (of {k}): fp32 '
          f'{[len(a) for a, _ in p32]}, bf16 {[len(a) for a, _ in p16]}; same order in bf16: '
          f'{[a == b for a, b in p16]}\n')
    print('| output (queries from shared tokens) | fp32 max abs | fp32 mean abs | bf16 max abs | '
          'bf16 mean abs |')
    print('|---|---|---|---|---|')
    r32 = list(rows(fp32, ref, p32)) + list(rows(fp32['interm_outputs'], ref['interm_outputs'],
                                                 p32, 'interm '))
    r16 = list(rows(bf16, ref, p16)) + list(rows(bf16['interm_outputs'], ref['interm_outputs'],
                                                 p16, 'interm '))
    for (name, m32, mean32), (_, m16, mean16) in zip(r32, r16):
        print(f'| {name} | {m32:.2e} | {mean32:.2e} | {m16:.2e} | {mean16:.2e} |')
    same = [len(a & b) for a, b in zip(top_instances(fp32, tokens32),
                                       top_instances(bf16, tokens16))]
    print(f'\ntop-30 (token, class) pairs by score shared by fp32 and bf16, per image: {same}')
    scale = ref['pred_logits'].abs().max().item()
    print(f'(class logits span +-{scale:.2f}; bf16 keeps 8 significant bits)')


if __name__ == '__main__':
    main()
