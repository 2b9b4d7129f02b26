"""Out-of-fold predictions: an honest validation score for an ensemble that is itself fit on validation data.

The ensemble is refit on k-1 folds of the validation predictions and predicts the held-out fold, so every
validation image is scored by an ensemble that never saw it. The final ensemble is still fit on all of them.
``OutOfFoldChoice`` does the same for a choice among candidates that arrive one at a time (a network's epochs):
each fold's images are predicted by the candidate that scored best on the other folds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from ensembles.base import check_labels, check_stack, sample_log_loss


def fold_splitter(y: np.ndarray, n_splits: int = 5, random_state: int | None = 0) -> StratifiedKFold | KFold:
    """A seeded, stratified, shuffled splitter with ``n_splits`` folds, fewer (at least 2) when a class of ``y``
    has fewer members than that; unstratified when no class has two (a handful of samples, at least 2)."""
    counts = np.unique(np.asarray(y), return_counts=True)[1]
    if len(counts) and counts.max() < 2:
        return KFold(n_splits=max(2, min(n_splits, int(counts.sum()))), shuffle=True, random_state=random_state)
    smallest = int(counts.min()) if len(counts) > 1 else 0
    return StratifiedKFold(n_splits=max(2, min(n_splits, smallest)), shuffle=True, random_state=random_state)


def stratified_folds(y: np.ndarray, n_splits: int = 5,
                     random_state: int | None = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (train, held-out) index pairs of ``fold_splitter``."""
    labels = np.asarray(y)
    return list(fold_splitter(labels, n_splits, random_state).split(np.zeros(len(labels)), labels))


def cross_val_proba(make: Callable[[], object], probas: np.ndarray, y: np.ndarray, n_splits: int = 5,
                    random_state: int | None = 0) -> np.ndarray:
    """Out-of-fold ensemble probabilities (n_samples, n_classes) for the estimator ``make()`` builds.

    ``probas`` is a stack (n_models, n_samples, n_classes) of the members' validation probabilities.
    """
    stack = check_stack(probas)
    labels = check_labels(y, stack)
    out = np.zeros(stack.shape[1:])
    for train, held_out in stratified_folds(labels, n_splits, random_state):
        estimator = make().fit(stack[:, train], labels[train])
        out[held_out] = estimator.predict_proba(stack[:, held_out])
    return out


class OutOfFoldChoice:
    """Choose the best of a stream of candidates (a network's epochs) without the optimism of choosing it on the
    samples that score it.

    Every candidate's probabilities pass through ``update``. For each fold, the choice is the candidate with the
    most correct predictions on the other folds (then the lowest log-loss, then the earliest, as a best epoch is
    kept); ``oof_`` holds, on each fold's samples, the probabilities of that fold's choice. Its accuracy estimates
    what choosing the best candidate on all samples is worth on new ones, which the best candidate's own score
    on them overstates (it is a maximum over candidates). Memory: one (n_samples, n_classes) array.
    """

    def __init__(self, y: np.ndarray, n_splits: int = 5, random_state: int | None = 0):
        labels = np.asarray(y, dtype=np.int64)
        self.y = labels
        self.fold = np.zeros(len(labels), dtype=np.int64)  # one sample: one fold, and nothing to hold it out of
        for k, (_, held_out) in enumerate(stratified_folds(labels, n_splits, random_state) if len(labels) > 1 else []):
            self.fold[held_out] = k
        self.n_folds = int(self.fold.max(initial=-1)) + 1
        self.chosen_ = np.full(self.n_folds, -1, dtype=np.int64)  # each fold's candidate (-1: none yet)
        self.correct_ = np.full(self.n_folds, -1, dtype=np.int64)  # its correct predictions on the other folds
        self.loss_ = np.full(self.n_folds, np.inf)  # its summed log-loss on the other folds
        self.oof_: np.ndarray | None = None

    def update(self, candidate: int, probas: np.ndarray) -> np.ndarray:
        """Score ``candidate`` (its probabilities of every sample, in order); return the indices of the samples
        whose fold now chooses it (their rows of ``oof_`` now hold ``probas``)."""
        probas = np.asarray(probas)
        if probas.shape[0] != len(self.y):
            raise ValueError(f"probabilities of {probas.shape[0]} samples for {len(self.y)} labels")
        correct = np.bincount(self.fold, probas.argmax(1) == self.y, self.n_folds).astype(np.int64)
        loss = np.bincount(self.fold, sample_log_loss(probas, self.y), self.n_folds)
        others_correct, others_loss = correct.sum() - correct, loss.sum() - loss
        better = (others_correct > self.correct_) | ((others_correct == self.correct_) & (others_loss < self.loss_))
        self.chosen_[better] = candidate
        self.correct_[better] = others_correct[better]
        self.loss_[better] = others_loss[better]
        if self.oof_ is None:
            self.oof_ = np.zeros(probas.shape, dtype=np.float32)
        rows = np.flatnonzero(better[self.fold])
        self.oof_[rows] = probas[rows]
        return rows

    def choose(self, candidates: Iterable[np.ndarray]) -> np.ndarray:
        """Score every candidate of a finished list (candidate ``i`` is the ``i``-th) and return ``oof_``."""
        for index, probas in enumerate(candidates):
            self.update(index, probas)
        if self.oof_ is None:
            raise ValueError("no candidates to choose from")
        return self.oof_

    def state_dict(self) -> dict[str, np.ndarray | None]:
        return {"chosen": self.chosen_.copy(), "correct": self.correct_.copy(), "loss": self.loss_.copy(),
                "oof": None if self.oof_ is None else self.oof_.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray | None]) -> None:
        """Continue from ``state_dict()``'s output (of a choice over the same samples and folds)."""
        if len(state["chosen"]) != self.n_folds or (state["oof"] is not None and len(state["oof"]) != len(self.y)):
            raise ValueError("the saved choice was made over other samples or folds")
        self.chosen_, self.correct_ = np.asarray(state["chosen"], np.int64), np.asarray(state["correct"], np.int64)
        self.loss_ = np.asarray(state["loss"], np.float64)
        self.oof_ = None if state["oof"] is None else np.asarray(state["oof"], np.float32)
