"""Soft voting (weighted probability averaging) and hard majority voting."""

from __future__ import annotations

import numpy as np

from ensembles.base import ProbaEnsemble, check_labels, check_stack


class SoftVoting(ProbaEnsemble):
    """Average the members' probabilities, uniformly or with the given (non-negative) weights."""

    def __init__(self, weights=None):
        self.weights = weights

    def fit(self, probas: np.ndarray, y: np.ndarray | None = None) -> SoftVoting:
        stack = check_stack(probas)
        if y is not None:
            check_labels(y, stack)
        weights = np.ones(stack.shape[0]) if self.weights is None else np.asarray(self.weights, dtype=np.float64)
        if weights.shape != (stack.shape[0],) or weights.min() < 0 or weights.sum() <= 0:
            raise ValueError(f"weights must be {stack.shape[0]} non-negative numbers, not all 0, "
                             f"but got {self.weights=}")
        self.weights_ = weights / weights.sum()
        self.n_classes_ = stack.shape[2]
        return self

    def predict_proba(self, probas: np.ndarray) -> np.ndarray:
        stack = check_stack(probas, len(self.weights_))
        return np.tensordot(self.weights_, stack, axes=1)


class HardVoting(ProbaEnsemble):
    """Majority vote of the members' predicted classes; ties go to the class with more total probability.

    ``predict_proba`` returns the vote shares, nudged by a thousandth of the mean probability (less than one
    vote) so that its argmax breaks ties as ``predict`` does.
    """

    tie_break: float = 1e-3  # below one vote for up to 1,000 members; visible in float32 (exported graphs)

    def fit(self, probas: np.ndarray, y: np.ndarray | None = None) -> HardVoting:
        stack = check_stack(probas)
        if y is not None:
            check_labels(y, stack)
        self.weights_ = np.full(stack.shape[0], 1.0 / stack.shape[0])
        self.n_classes_ = stack.shape[2]
        return self

    def predict_proba(self, probas: np.ndarray) -> np.ndarray:
        stack = check_stack(probas, len(self.weights_))
        votes = np.zeros(stack.shape[1:])
        np.add.at(votes, (np.arange(stack.shape[1])[None, :].repeat(stack.shape[0], 0), stack.argmax(2)), 1.0)
        shares = votes / stack.shape[0] + self.tie_break * stack.mean(axis=0)
        return shares / shares.sum(axis=1, keepdims=True)


class SingleModel(ProbaEnsemble):
    """One model passed through: the first of the stack (a best single trial, a soup, a distilled student)."""

    def fit(self, probas: np.ndarray | None = None, y: np.ndarray | None = None) -> SingleModel:
        self.weights_ = np.ones(1)
        return self

    def predict_proba(self, probas: np.ndarray) -> np.ndarray:
        return check_stack(probas)[0]
