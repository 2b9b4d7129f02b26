"""Test-set metrics with uncertainty: scikit-learn's scores, calibration, Wilson intervals and McNemar."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn import metrics

from ensembles import log_loss
from hpsearch.ensemble import BOOTSTRAP_RESAMPLES, bootstrap_interval


def expected_calibration_error(probas: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    confidence = probas.max(axis=1)
    correct = probas.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    # per bin: |sum(correct) - sum(confidence)| / n, which is the bin's weight times its |accuracy - confidence|
    gap = np.bincount(which, weights=correct - confidence, minlength=bins)
    return float(np.abs(gap).sum() / len(y)) if len(y) else 0.0


def ece_change_ci(raw: np.ndarray, calibrated: np.ndarray, y: np.ndarray, seed: int = 0,
                  resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """95% paired bootstrap interval of ECE(calibrated) - ECE(raw): each resample draws the same test images for
    both, so an interval below 0 says temperature scaling lowered the ECE by more than the test set's noise."""
    def change(picked: np.ndarray) -> float:
        return (expected_calibration_error(calibrated[picked], y[picked])
                - expected_calibration_error(raw[picked], y[picked]))

    return bootstrap_interval(change, len(y), seed, resamples)


def accuracy_ci(correct: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of an accuracy: never collapses to a point, even at 0 % or 100 %."""
    correct = np.asarray(correct, dtype=bool)
    if len(correct) == 0:
        return float("nan"), float("nan")
    interval = stats.binomtest(int(correct.sum()), len(correct)).proportion_ci(confidence_level=level,
                                                                               method="wilson")
    return float(interval.low), float(interval.high)


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray, exact: bool | None = None) -> float:
    """McNemar's test p-value for two classifiers on the same samples.

    Uses the exact binomial test on the discordant pairs when there are fewer than 25 of them
    (or when ``exact``), else the chi-square statistic with continuity correction.
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    discordant = only_a + only_b
    if discordant == 0:
        return 1.0
    if exact if exact is not None else discordant < 25:
        return float(stats.binomtest(only_a, discordant, 0.5).pvalue)
    statistic = (abs(only_a - only_b) - 1.0) ** 2 / discordant
    return float(stats.chi2.sf(statistic, df=1))


def classification_metrics(probas: np.ndarray, y: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Every score of one model's test predictions (one row of ``test_metrics.csv``)."""
    n_classes = probas.shape[1]
    pred = probas.argmax(axis=1)
    correct = pred == y
    low, high = accuracy_ci(correct)
    row = {
        "accuracy": float(correct.mean()), "accuracy_ci_low": low, "accuracy_ci_high": high,
        "balanced_accuracy": float(metrics.balanced_accuracy_score(y, pred)),
    }
    for average in ("macro", "weighted"):
        p, r, f, _ = metrics.precision_recall_fscore_support(y, pred, average=average, zero_division=0,
                                                             labels=np.arange(n_classes))
        row.update({f"precision_{average}": float(p), f"recall_{average}": float(r), f"f1_{average}": float(f)})
    clipped = np.clip(probas, 1e-15, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    try:
        row["roc_auc_ovr_macro"] = float(metrics.roc_auc_score(y, clipped, multi_class="ovr", average="macro",
                                                              labels=np.arange(n_classes)))
    except ValueError:
        row["roc_auc_ovr_macro"] = float("nan")  # a class absent from y
    row["log_loss"] = log_loss(probas, y)
    row["ece"] = expected_calibration_error(probas, y)
    return row


def per_class_table(probas: np.ndarray, y: np.ndarray, classes: list[str]) -> pd.DataFrame:
    pred = probas.argmax(axis=1)
    p, r, f, support = metrics.precision_recall_fscore_support(y, pred, labels=np.arange(len(classes)),
                                                               zero_division=0)
    return pd.DataFrame({"class": classes, "precision": p, "recall": r, "f1": f, "support": support})


def confusion_table(probas: np.ndarray, y: np.ndarray, classes: list[str]) -> pd.DataFrame:
    matrix = metrics.confusion_matrix(y, probas.argmax(axis=1), labels=np.arange(len(classes)))
    return pd.DataFrame(matrix, index=pd.Index(classes, name="true"), columns=classes)
