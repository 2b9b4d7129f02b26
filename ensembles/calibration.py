"""Temperature scaling (Guo et al., 2017) of class probabilities: one scalar, fit by log-loss, argmax unchanged."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.base import BaseEstimator

from ensembles.base import LOG_LOSS_CLIP, check_labels, log_loss


def scale_probabilities(probas: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(p) / T): T > 1 softens, T < 1 sharpens; the ranking of classes never changes."""
    logits = np.log(np.clip(np.asarray(probas, dtype=np.float64), LOG_LOSS_CLIP, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=-1, keepdims=True)


class TemperatureScaling(BaseEstimator):
    """Fit the temperature that minimizes the log-loss of ``probas`` (n_samples, n_classes) against ``y``.

    Works on any model's or ensemble's probabilities (their logarithms stand in for logits), so it also
    calibrates the flat vote shares of SAMME or hard voting. ``temperature_`` is searched on a log scale
    between ``bounds``.
    """

    def __init__(self, bounds: tuple[float, float] = (0.05, 20.0)):
        self.bounds = bounds

    def fit(self, probas: np.ndarray, y: np.ndarray) -> TemperatureScaling:
        probas = np.asarray(probas, dtype=np.float64)
        labels = check_labels(y, probas[None])
        low, high = np.log(self.bounds[0]), np.log(self.bounds[1])
        found = minimize_scalar(lambda t: log_loss(scale_probabilities(probas, np.exp(t)), labels),
                                bounds=(low, high), method="bounded", options={"xatol": 1e-4})
        self.temperature_ = float(np.exp(found.x))
        self.n_classes_ = probas.shape[1]
        return self

    def predict_proba(self, probas: np.ndarray) -> np.ndarray:
        return scale_probabilities(probas, self.temperature_)

    def predict(self, probas: np.ndarray) -> np.ndarray:
        return np.asarray(probas).argmax(axis=-1)
