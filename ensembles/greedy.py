"""Greedy ensemble selection (Caruana et al., 2004): forward selection with replacement."""

from __future__ import annotations

import numpy as np

from ensembles.base import ProbaEnsemble, check_labels, check_stack, log_loss


def _scores(mean_probas: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and log-loss of candidate ensembles, shape (n_candidates,) each."""
    accuracy = (mean_probas.argmax(axis=2) == y[None, :]).mean(axis=1)
    return accuracy, log_loss(mean_probas, y)


class GreedySelection(ProbaEnsemble):
    """Caruana's selection: add, with replacement, the member that most improves validation accuracy.

    Each of ``max_size`` steps adds the best candidate (ties in accuracy go to the lower log-loss,
    then to a seeded random choice); the ensemble kept is the best prefix of that sequence, so it is
    never worse on validation data than the best single member picked first. ``trajectory_`` lists
    every step (member, accuracy, log_loss, and the best accuracy so far); ``best_step_`` is the
    prefix kept and ``weights_`` each member's share of its picks.
    """

    def __init__(self, max_size: int = 25, random_state: int | None = 0):
        self.max_size = max_size
        self.random_state = random_state

    def fit(self, probas: np.ndarray, y: np.ndarray) -> GreedySelection:
        stack = check_stack(probas)
        labels = check_labels(y, stack)
        if self.max_size < 1:
            raise ValueError(f"max_size must be at least 1, but got {self.max_size=}")
        rng = np.random.default_rng(self.random_state)
        total = np.zeros(stack.shape[1:])
        picks: list[int] = []
        trajectory: list[dict] = []
        best = (-np.inf, np.inf, 0)  # accuracy, log-loss, step
        for step in range(1, self.max_size + 1):
            accuracy, loss = _scores((total[None] + stack) / step, labels)
            top = np.flatnonzero(accuracy == accuracy.max())
            top = top[loss[top] <= loss[top].min() + 1e-12]
            choice = int(rng.choice(top))
            picks.append(choice)
            total += stack[choice]
            if accuracy[choice] > best[0] or (accuracy[choice] == best[0] and loss[choice] < best[1]):
                best = (float(accuracy[choice]), float(loss[choice]), step)
            trajectory.append({"step": step, "member": choice, "accuracy": float(accuracy[choice]),
                               "log_loss": float(loss[choice]), "best_accuracy": best[0]})
        self.best_step_ = best[2]
        counts = np.bincount(picks[: self.best_step_], minlength=stack.shape[0]).astype(np.float64)
        self.weights_ = counts / counts.sum()
        self.trajectory_ = trajectory
        self.n_classes_ = stack.shape[2]
        return self

    def predict_proba(self, probas: np.ndarray) -> np.ndarray:
        stack = check_stack(probas, len(self.weights_))
        return np.tensordot(self.weights_, stack, axes=1)
