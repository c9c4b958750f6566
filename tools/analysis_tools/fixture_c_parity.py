"""Training parity report against the authors' Mask DINO (``../shared/fixtures/fixture_C.pt``).

Runs the plugin's loss step on the fixture (see :mod:`mmdet_maskdino.testing.fixture_c`) for the
cases with and without denoising and prints, per group of recorded items, how many items were
compared, the largest difference relative to its tolerance, and that item; ``--all`` prints every
item. Exit status 1 if any item is out of tolerance.

Example::

    python tools/analysis_tools/fixture_c_parity.py
"""
import argparse
import os.path as osp
import sys
from collections import defaultdict

import torch

from mmdet_maskdino.testing.fixture_c import FIXTURES, compare, run_case


def _fmt(row) -> str:
    if row.kind == 'exact':
        return f'{row.diff:g} differing (exact)'
    if row.kind == 'min':
        return f'{row.diff:.8f} (>= {row.tol:g})'
    return f'{row.diff:.2e} ({"rel" if row.kind == "rel" else "abs"}, tol {row.tol:g})'


def _headroom(row) -> float:
    """How close a row is to failing: 0 = exact match, 1 = at the tolerance."""
    if row.kind == 'min':
        return (1 - row.diff) / max(1 - row.tol, 1e-12)
    return row.diff / row.tol if row.tol > 0 else (0.0 if row.diff == 0 else float('inf'))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--fixture', default=osp.join(FIXTURES, 'fixture_C.pt'))
    parser.add_argument('--all', action='store_true', help='print every compared item')
    args = parser.parse_args()
    torch.set_num_threads(1)  # the fixture's thread count
    fx = torch.load(args.fixture, weights_only=True)
    failed = 0
    for case in ('dn', 'nodn'):
        rows = compare(fx, case, run_case(fx, case))
        failed += sum(not r.ok for r in rows)
        groups = defaultdict(list)
        for r in rows:
            groups[r.group].append(r)
        print(f'\n### Case `{case}`: {len(rows)} items, {sum(not r.ok for r in rows)} out of '
              'tolerance\n')
        print('| group | items | worst item | its difference (tolerance) | ok |')
        print('|---|---|---|---|---|')
        for group, items in groups.items():
            worst = max(items, key=_headroom)
            print(f'| {group} | {len(items)} | {worst.item} | {_fmt(worst)} | '
                  f'{"yes" if all(r.ok for r in items) else "**no**"} |')
        if args.all:
            for r in rows:
                print(f'{"ok " if r.ok else "BAD"} {r.group:15s} {r.item:70s} {_fmt(r)}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
