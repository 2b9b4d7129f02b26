"""Multi-class AdaBoost (SAMME, Zhu et al. 2009) over members retrained on reweighted training data."""

from __future__ import annotations

import numpy as np

from ensembles.base import ProbaEnsemble, check_labels, check_stack


def samme_step(sample_weight: np.ndarray, y: np.ndarray, predicted: np.ndarray, n_classes: int,
               learning_rate: float = 1.0) -> tuple[float, np.ndarray, float]:
    """One SAMME round: the member's weight ``alpha``, the next sample weights and the weighted error.

    ``alpha = lr * (log((1 - err) / err) + log(K - 1))``; misclassified samples are multiplied by
    ``exp(alpha)``. A member no better than chance (``err >= 1 - 1/K``) gets ``alpha = 0`` and leaves
    the weights as they are; a perfect one gets a large finite weight.
    """
    weight = np.asarray(sample_weight, dtype=np.float64)
    weight = weight / weight.sum()
    miss = np.asarray(predicted) != np.asarray(y)
    error = float(np.sum(weight[miss]))
    if error >= 1.0 - 1.0 / n_classes:
        return 0.0, weight, error
    error = max(error, 1e-10)
    alpha = learning_rate * (np.log((1.0 - error) / error) + np.log(n_classes - 1.0))
    updated = weight * np.exp(alpha * miss)
    return float(alpha), updated / updated.sum(), error


class AdaBoostSAMME(ProbaEnsemble):
    """Combine members trained in sequence; ``fit`` replays SAMME on their training-set probabilities.

    ``probas`` given to ``fit`` are the members' predictions on the training data they were boosted
    on, in training order. ``alphas_``, ``errors_`` and ``sample_weights_`` (the weights each member
    was trained with) record every round.
    """

    def __init__(self, learning_rate: float = 1.0):
        self.learning_rate = learning_rate

    def fit(self, probas: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> AdaBoostSAMME:
        stack = check_stack(probas)
        labels = check_labels(y, stack)
        weight = np.full(len(labels), 1.0 / len(labels)) if sample_weight is None else np.asarray(sample_weight)
        alphas, errors, history = [], [], []
        for member in stack:
            history.append(weight / weight.sum())
            alpha, weight, error = samme_step(weight, labels, member.argmax(1), stack.shape[2], self.learning_rate)
            alphas.append(alpha)
            errors.append(error)
        self.alphas_, self.errors_ = np.array(alphas), np.array(errors)
        self.sample_weights_ = np.stack(history)
        total = self.alphas_.sum()
        self.weights_ = self.alphas_ / total if total > 0 else np.full(len(alphas), 1.0 / len(alphas))
        self.n_classes_ = stack.shape[2]
        return self

    @classmethod
    def from_rounds(cls, alphas, n_classes: int, errors=None, learning_rate: float = 1.0) -> AdaBoostSAMME:
        """A fitted ensemble from recorded SAMME rounds (members boosted elsewhere, e.g. on training data)."""
        model = cls(learning_rate=learning_rate)
        model.alphas_ = np.asarray(alphas, dtype=np.float64)
        if model.alphas_.ndim != 1 or len(model.alphas_) == 0 or model.alphas_.min() < 0 or model.alphas_.sum() <= 0:
            raise ValueError(f"alphas must be non-negative and not all 0, but got {alphas=}")
        model.errors_ = None if errors is None else np.asarray(errors, dtype=np.float64)
        model.weights_ = model.alphas_ / model.alphas_.sum()
        model.n_classes_ = int(n_classes)
        return model

    def decision_function(self, probas: np.ndarray) -> np.ndarray:
        """Alpha-weighted votes in SAMME's symmetric coding (1 for the predicted class, -1/(K-1) for
        the others), normalized by the sum of alphas, as scikit-learn computes them."""
        stack = check_stack(probas, len(self.alphas_))
        k = stack.shape[2]
        onehot = np.eye(k)[stack.argmax(2)]  # (n_models, n_samples, n_classes)
        votes = np.where(onehot > 0, 1.0, -1.0 / (k - 1))
        return np.tensordot(self.weights_, votes, axes=1)

    def predict_proba(self, probas: np.ndarray) -> np.ndarray:
        """scikit-learn's SAMME probabilities: softmax of the decision divided by (K - 1)."""
        decision = self.decision_function(probas) / max(self.n_classes_ - 1, 1)
        decision -= decision.max(axis=1, keepdims=True)
        exp = np.exp(decision)
        return exp / exp.sum(axis=1, keepdims=True)
