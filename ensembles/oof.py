"""Out-of-fold predictions: an honest validation score for an ensemble that is itself fit on validation data.

The ensemble is refit on k-1 folds of the validation predictions and predicts the held-out fold, so every
validation image is scored by an ensemble that never saw it. The final ensemble is still fit on all of them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.model_selection import StratifiedKFold

from ensembles.base import check_labels, check_stack


def fold_splitter(y: np.ndarray, n_splits: int = 5, random_state: int | None = 0) -> StratifiedKFold:
    """A seeded, stratified, shuffled splitter with ``n_splits`` folds, fewer (at least 2) when a class of ``y``
    has fewer members than that."""
    labels = np.asarray(y)
    smallest = int(np.bincount(labels).min(initial=0)) if len(np.unique(labels)) > 1 else 0
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
