"""Seed statistics of the learning benchmark, against hand-computed means and deviations."""
import math

import pytest

from mmdet_maskdino.benchmarks.learning import seconds_per_iter, summarise_seeds


def test_mean_and_sample_std_over_seeds():
    curves = {
        0: [(100, 0.1, 0.2), (200, 0.3, 0.4)],
        1: [(100, 0.3, 0.2), (200, 0.5, 0.6)],
    }
    rows = summarise_seeds(curves)
    assert [r['iter'] for r in rows] == [100, 200]
    assert rows[0]['n'] == 2
    assert rows[0]['box_mean'] == pytest.approx(0.2)
    # sample std of {0.1, 0.3}: sqrt(((-0.1)^2 + 0.1^2) / 1)
    assert rows[0]['box_std'] == pytest.approx(math.sqrt(0.02))
    assert rows[0]['mask_std'] == pytest.approx(0.0)
    assert rows[1]['mask_mean'] == pytest.approx(0.5)


def test_only_iterations_every_seed_reached():
    curves = {0: [(100, 0.1, 0.1), (200, 0.2, 0.2)], 1: [(100, 0.3, 0.3)]}
    rows = summarise_seeds(curves)
    assert [r['iter'] for r in rows] == [100]
    assert rows[0]['box_mean'] == pytest.approx(0.2)


def test_one_seed_has_zero_std_and_no_seeds_nothing():
    rows = summarise_seeds({3: [(50, 0.4, 0.5)]})
    assert rows == [dict(iter=50, n=1, box_mean=0.4, box_std=0.0, mask_mean=0.5, mask_std=0.0)]
    assert summarise_seeds({}) == []


def test_seconds_per_iter_reads_the_newest_runs_training_records(tmp_path):
    import json

    def run(name, records):
        folder = tmp_path / name / 'vis_data'
        folder.mkdir(parents=True)
        (folder / 'scalars.json').write_text('\n'.join(json.dumps(r) for r in records))

    run('20260101_000000', [dict(iter=30, time=9.0, loss=1.0)])  # an older run: ignored
    run('20260102_000000', [
        dict(iter=10, time=5.0, loss=2.0),  # warm-up: ignored
        dict(iter=30, time=0.4, loss=1.0), dict(iter=40, time=0.6, loss=1.0),
        dict(iter=40, time=3.0, **{'coco/bbox_mAP': 0.1}),  # validation record: ignored
        dict(iter=50, time=0.5, loss=1.0)])
    assert seconds_per_iter(str(tmp_path)) == 0.5
    with pytest.raises(ValueError, match='no training iteration time logged after iteration 60'):
        seconds_per_iter(str(tmp_path), skip=60)
