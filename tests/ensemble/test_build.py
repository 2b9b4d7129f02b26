"""The bootstrap that every interval of the ensemble and evaluation stages draws from."""

import numpy as np
import pytest

from hpsearch.ensemble import BOOTSTRAP_RESAMPLES, bootstrap_interval
from hpsearch.ensemble.build import paired_bootstrap


def test_resamples_drawn_one_at_a_time_equal_one_matrix_of_draws():
    """The published oof_gain intervals came from one (resamples, n) matrix of draws; drawing a row at a time
    (memory n, not resamples x n) must give the same resamples for the same seed."""
    rng = np.random.default_rng(3)
    for n in (496, 101, 7):
        correct, reference = rng.random(n) < 0.8, rng.random(n) < 0.7
        diff = correct.astype(float) - reference.astype(float)
        draws = np.random.default_rng(5).integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
        means = diff[draws].mean(axis=1)
        expected = (diff.mean(), np.quantile(means, 0.025), np.quantile(means, 0.975))
        assert paired_bootstrap(correct, reference, seed=5) == pytest.approx(expected, abs=1e-12)


def test_interval_matches_the_sampling_spread_of_a_mean():
    values = np.random.default_rng(0).normal(size=2000)
    low, high = bootstrap_interval(lambda picked: values[picked].mean(), len(values), seed=0)
    half_width = 1.96 * values.std() / np.sqrt(len(values))  # about 0.044
    assert low < values.mean() < high
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.1)
    low90, high90 = bootstrap_interval(lambda picked: values[picked].mean(), len(values), seed=0, level=0.9)
    assert low < low90 < high90 < high


def test_every_resample_has_n_indices_within_range_and_the_seed_drives_them():
    seen = []
    bootstrap_interval(lambda picked: seen.append(picked) or 0.0, 10, seed=1, resamples=50)
    assert len(seen) == 50 and all(len(p) == 10 and p.min() >= 0 and p.max() < 10 for p in seen)
    assert len({tuple(p) for p in seen}) > 40  # not one resample repeated
    again = []
    bootstrap_interval(lambda picked: again.append(picked) or 0.0, 10, seed=2, resamples=50)
    assert not all(np.array_equal(a, b) for a, b in zip(seen, again, strict=True))


def test_no_samples_give_no_interval():
    assert all(np.isnan(bootstrap_interval(lambda picked: 0.0, 0, seed=0)))
