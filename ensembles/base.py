"""The estimator contract every ensemble follows, on stacks of class probabilities.

A stack has shape (n_models, n_samples, n_classes). ``fit(probas, y)`` learns from validation
predictions and returns ``self``; learned state ends in ``_``; ``predict`` is the argmax of
``predict_proba``.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

LOG_LOSS_CLIP = 1e-15  # the one clip every log-loss in hpsearch uses


def sample_log_loss(probas: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each sample's negative log-probability of its true class, probabilities clipped at ``LOG_LOSS_CLIP``;
    ``probas`` of shape (..., n_samples, n_classes) gives (..., n_samples)."""
    probas, labels = np.asarray(probas), np.asarray(y, dtype=np.int64)
    picked = probas[..., np.arange(len(labels)), labels]
    return -np.log(np.clip(picked, LOG_LOSS_CLIP, 1.0))


def log_loss(probas: np.ndarray, y: np.ndarray) -> float | np.ndarray:
    """Mean negative log-probability of the true classes (``sample_log_loss`` averaged).

    ``probas`` has shape (n_samples, n_classes), or (..., n_samples, n_classes) for one loss per leading index.
    """
    loss = sample_log_loss(probas, y).mean(axis=-1)
    return float(loss) if np.ndim(loss) == 0 else loss


def check_stack(probas: np.ndarray, n_models: int | None = None) -> np.ndarray:
    """Validate a (n_models, n_samples, n_classes) stack of probabilities and return it as float64."""
    stack = np.asarray(probas, dtype=np.float64)
    if stack.ndim != 3:
        raise ValueError(f"probas must have shape (n_models, n_samples, n_classes), but got shape={stack.shape}")
    if n_models is not None and stack.shape[0] != n_models:
        raise ValueError(f"the ensemble was fit on {n_models} models, but got {stack.shape[0]}")
    if not np.all(np.isfinite(stack)) or stack.min() < 0:
        raise ValueError("probas must be finite and non-negative")
    return stack


def check_labels(y: np.ndarray, stack: np.ndarray) -> np.ndarray:
    labels = np.asarray(y)
    if labels.shape != (stack.shape[1],):
        raise ValueError(f"y must have one label per sample ({stack.shape[1]}), but got shape={labels.shape}")
    if labels.min() < 0 or labels.max() >= stack.shape[2]:
        raise ValueError(f"labels must be in [0, {stack.shape[2]}), but got min={labels.min()}, max={labels.max()}")
    return labels.astype(np.int64)


class ProbaEnsemble(ClassifierMixin, BaseEstimator):
    """Base class: subclasses implement ``fit`` and ``predict_proba``."""

    def predict(self, probas: np.ndarray) -> np.ndarray:
        return self.predict_proba(probas).argmax(axis=1)

    def score(self, probas: np.ndarray, y: np.ndarray, sample_weight=None) -> float:
        return float(np.mean(self.predict(probas) == np.asarray(y)))

    def members(self) -> dict[int, float]:
        """Weight of each member model by its index in the stack (members with weight 0 left out)."""
        weights = getattr(self, "weights_", None)
        if weights is None:
            raise AttributeError(f"{type(self).__name__} is not fitted or has no per-member weights")
        return {int(i): float(w) for i, w in enumerate(weights) if w > 0}
