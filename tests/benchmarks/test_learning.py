"""Seed statistics of the learning benchmark, against hand-computed means and deviations."""
import math

import pytest

from mmdet_maskdino.benchmarks.learning import summarise_seeds


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
