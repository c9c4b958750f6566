"""Learning-curve statistics over seeds (the learning benchmark's table)."""
import statistics
from typing import Dict, List, Sequence, Tuple

#: One evaluation: ``(iteration, box AP, mask AP)``.
CurvePoint = Tuple[int, float, float]


def shapes_run_options(data_root: str, iters: int, val_interval: int, seed: int) -> List[str]:
    """``--cfg-options`` of a demo-config run on a generated shapes dataset: the schedule
    (``iters``, LR drop at 5/6), validation every ``val_interval``, one checkpoint at the end, the
    seed, and every split (the config check also wants the test split to exist) on ``data_root``.
    """
    ann = data_root.rstrip('/') + '/annotations/instances_val.json'
    return [
        f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={val_interval}',
        f'param_scheduler.end={iters}', f'param_scheduler.milestones=[{int(iters * 5 / 6)}]',
        f'default_hooks.checkpoint.interval={iters}', f'randomness.seed={seed}',
        f'train_dataloader.dataset.data_root={data_root}',
        f'val_dataloader.dataset.data_root={data_root}', f'val_evaluator.ann_file={ann}',
        f'test_dataloader.dataset.data_root={data_root}', f'test_evaluator.ann_file={ann}'
    ]


def train_curve(config: str, work_dir: str, options: Sequence[str], val_interval: int,
                iters: int) -> List[CurvePoint]:
    """Train ``config`` through ``tools/train.py`` with ``--cfg-options options`` (e.g.
    :func:`shapes_run_options`) and return its ``(iter, box AP, mask AP)`` curve."""
    import os
    import subprocess
    import sys

    from .zoo import read_curve
    subprocess.run([sys.executable, 'tools/train.py', config, '--work-dir', work_dir,
                    '--cfg-options', *options], check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, PYTHONWARNINGS='ignore'))
    return [(p['iter'], p['box AP'], p['mask AP'])
            for p in read_curve(work_dir, val_interval, iters, last_run_only=True)]


def seconds_per_iter(work_dir: str, skip: int = 20) -> float:
    """Median training-iteration time of the newest run in ``work_dir``: MMEngine's logged
    ``time`` (seconds per iteration, averaged over each logging window) of the training records
    after iteration ``skip`` (warm-up excluded; validation is not an iteration).

    Raises:
        ValueError: If the run logged no training record after ``skip``.
    """
    import json
    import statistics

    from .zoo import _scalars_files
    files = _scalars_files(work_dir)
    times = []
    if files:
        with open(files[-1]) as f:
            for line in f:
                record = json.loads(line)
                if 'time' in record and 'loss' in record and record.get('iter', 0) > skip:
                    times.append(float(record['time']))
    if not times:
        raise ValueError(f'{work_dir}: no training iteration time logged after iteration {skip}')
    return statistics.median(times)


def summarise_seeds(curves: Dict[int, Sequence[CurvePoint]]) -> List[dict]:
    """Mean and sample standard deviation of box / mask AP per iteration over seeds.

    Only iterations evaluated in every seed's curve are summarised (a crashed or shorter run does
    not silently shift the mean).

    Args:
        curves (dict): ``{seed: [(iter, box_ap, mask_ap), ...]}``.

    Returns:
        list[dict]: One dict per common iteration, ascending: ``iter``, ``n`` (seeds),
        ``box_mean``, ``box_std``, ``mask_mean``, ``mask_std`` (std 0.0 with one seed).
    """
    if not curves:
        return []
    by_iter = [{it: (box, mask) for it, box, mask in curve} for curve in curves.values()]
    common = sorted(set.intersection(*(set(c) for c in by_iter)))
    rows = []
    for it in common:
        boxes = [c[it][0] for c in by_iter]
        masks = [c[it][1] for c in by_iter]
        rows.append(dict(iter=it, n=len(boxes), box_mean=statistics.fmean(boxes),
                         box_std=statistics.stdev(boxes) if len(boxes) > 1 else 0.0,
                         mask_mean=statistics.fmean(masks),
                         mask_std=statistics.stdev(masks) if len(masks) > 1 else 0.0))
    return rows
