"""Bagging: members retrained on bootstrap resamples of the training split, then averaged."""

from __future__ import annotations

import numpy as np

from ensembles.averaging import SoftVoting


def bootstrap_indices(labels: np.ndarray, n_members: int, random_state: int = 0,
                      stratified: bool = True) -> list[np.ndarray]:
    """One bootstrap resample (indices, with replacement, same size) of the training set per member.

    ``stratified`` resamples within each class, so every member sees every class in its proportion.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(random_state)
    samples = []
    for _ in range(n_members):
        if stratified:
            parts = [rng.choice(np.flatnonzero(labels == c), size=int((labels == c).sum()), replace=True)
                     for c in np.unique(labels)]
            samples.append(np.sort(np.concatenate(parts)))
        else:
            samples.append(np.sort(rng.integers(0, len(labels), size=len(labels))))
    return samples


class Bagging(SoftVoting):
    """The bagged members' probabilities, averaged uniformly."""

    def __init__(self):
        super().__init__(weights=None)
