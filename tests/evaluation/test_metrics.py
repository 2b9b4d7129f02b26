from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from hpsearch.evaluation.metrics import (
    accuracy_ci,
    classification_metrics,
    confusion_table,
    ece_change_ci,
    expected_calibration_error,
    mcnemar,
    per_class_table,
)


def test_mcnemar_matches_known_tables():
    # Wikipedia's example: b = 121, c = 59 discordant pairs; with continuity correction chi2 = 20.67
    a = np.array([True] * 101 + [True] * 121 + [False] * 59 + [False] * 33)
    b = np.array([True] * 101 + [False] * 121 + [True] * 59 + [False] * 33)
    expected = stats.chi2.sf((abs(121 - 59) - 1) ** 2 / 180, df=1)
    assert mcnemar(a, b) == pytest.approx(expected) and mcnemar(a, b) == pytest.approx(5.45e-6, rel=0.02)
    # few discordant pairs: exact two-sided binomial, 1 vs 9 -> p = 2 * P(X <= 1 | n=10, 0.5) = 22/1024
    a = np.array([True] * 1 + [False] * 9 + [True] * 20)
    b = np.array([False] * 1 + [True] * 9 + [True] * 20)
    assert mcnemar(a, b) == pytest.approx(22 / 1024)
    assert mcnemar(a, a) == 1.0


def test_accuracy_ci_covers_the_truth_at_about_the_nominal_rate():
    rng = np.random.default_rng(0)
    truth, n, runs = 0.8, 300, 400
    covered = 0
    for _ in range(runs):
        low, high = accuracy_ci(rng.random(n) < truth)
        covered += low <= truth <= high
    assert 0.92 <= covered / runs <= 0.98


@pytest.mark.parametrize("hits", [0, 270])
def test_accuracy_ci_does_not_collapse_at_0_or_100_percent(hits):
    """A model at 270/270 (or 0/270) is not known to be perfect (or useless): the interval has width."""
    correct = np.arange(270) < hits
    low, high = accuracy_ci(correct)
    assert low < high and low <= correct.mean() <= high
    assert (high - low) > 0.005 and 0.0 <= low and high <= 1.0
    assert (low == 1.0) is False and (high == 0.0) is False


def test_accuracy_ci_is_ordered_around_the_accuracy():
    correct = np.random.default_rng(1).random(200) < 0.7
    low, high = accuracy_ci(correct)
    assert low < correct.mean() < high


def test_ece_is_zero_for_calibrated_and_large_for_overconfident():
    y = np.array([0, 1] * 50)
    perfect = np.eye(2)[y]
    assert expected_calibration_error(perfect, y) == pytest.approx(0.0)
    overconfident = np.eye(2)[1 - y] * 0.99 + 0.005  # always wrong, 99.5% sure
    assert expected_calibration_error(overconfident, y) == pytest.approx(0.995)


def predictions(confidence: float, n: int = 400, accuracy: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Three-class probabilities that put ``confidence`` on a prediction right ``accuracy`` of the time."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    predicted = np.where(rng.random(n) < accuracy, y, (y + 1) % 3)
    probs = np.full((n, 3), (1 - confidence) / 2)
    probs[np.arange(n), predicted] = confidence
    return probs, y


def test_ece_change_interval_separates_a_real_improvement_from_noise():
    overconfident, y = predictions(0.99)
    calibrated, _ = predictions(0.70)
    assert ece_change_ci(overconfident, overconfident, y) == (0.0, 0.0)
    low, high = ece_change_ci(overconfident, calibrated, y)
    change = expected_calibration_error(calibrated, y) - expected_calibration_error(overconfident, y)
    assert low < change < high < 0  # about -0.29: far beyond what resampling 400 images moves
    nudged, _ = predictions(0.69)  # a temperature near 1 on a model about as sure as it is right
    low, high = ece_change_ci(calibrated, nudged, y)
    assert low < 0 < high
    assert ece_change_ci(calibrated, nudged, y, seed=1) != (low, high)  # the seed drives the resamples


def test_classification_metrics_of_a_known_prediction():
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.full((6, 3), 0.1)
    pred = np.array([0, 0, 1, 2, 2, 2])
    probs[np.arange(6), pred] = 0.8
    row = classification_metrics(probs, y)
    assert row["accuracy"] == pytest.approx(5 / 6)
    assert row["recall_macro"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert row["precision_macro"] == pytest.approx((1 + 1 + 2 / 3) / 3)
    assert 0 < row["log_loss"] and 0 <= row["ece"] <= 1 and 0.5 < row["roc_auc_ovr_macro"] <= 1
    assert row["accuracy_ci_low"] <= row["accuracy"] <= row["accuracy_ci_high"]
    table = per_class_table(probs, y, ["a", "b", "c"])
    assert table["support"].tolist() == [2, 2, 2] and table.loc[1, "recall"] == 0.5
    assert confusion_table(probs, y, ["a", "b", "c"]).loc["b", "c"] == 1
