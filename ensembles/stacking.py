"""Stacking: a scikit-learn meta-learner fit on the members' validation probabilities."""

from __future__ import annotations

import inspect

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import cross_val_predict

from ensembles.base import ProbaEnsemble, check_labels, check_stack
from ensembles.oof import fold_splitter

STACK_FEATURE_CLIP = 1e-7  # probabilities below this are taken as this before their logarithm


def stack_features(stack: np.ndarray) -> np.ndarray:
    """(n_models, n_samples, n_classes) -> (n_samples, n_models * n_classes) of log-probabilities."""
    logs = np.log(np.clip(stack, STACK_FEATURE_CLIP, 1.0))
    return logs.transpose(1, 0, 2).reshape(stack.shape[1], -1)


class Stacking(ProbaEnsemble):
    """Fit ``meta_learner`` (default: logistic regression, its C chosen by cross-validation) on the stack.

    Everything is fit on validation predictions only. With ``cv_score=True``, ``cv_accuracy_`` is the
    meta-learner's out-of-fold accuracy on them (stratified ``cv`` folds, the members fixed): an honest estimate
    that needs no test data, at ``cv`` more fits of the meta-learner (``cross_val_proba`` refits the whole
    ensemble per fold instead).
    """

    def __init__(self, meta_learner=None, cv: int = 5, random_state: int | None = 0, cv_score: bool = False):
        self.meta_learner = meta_learner
        self.cv = cv
        self.random_state = random_state
        self.cv_score = cv_score

    def _default_meta(self, folds):
        kwargs = {"Cs": np.logspace(-3, 3, 7), "cv": folds, "max_iter": 2000, "scoring": "neg_log_loss"}
        parameters = inspect.signature(LogisticRegressionCV).parameters
        if "use_legacy_attributes" in parameters:  # scikit-learn >= 1.9 is moving to an L2 via l1_ratios=(0,)
            kwargs.update(use_legacy_attributes=False, l1_ratios=(0.0,))
        return LogisticRegressionCV(**kwargs)

    def fit(self, probas: np.ndarray, y: np.ndarray) -> Stacking:
        stack = check_stack(probas)
        labels = check_labels(y, stack)
        folds = fold_splitter(labels, self.cv, self.random_state)
        meta = clone(self.meta_learner) if self.meta_learner is not None else self._default_meta(folds)
        features = stack_features(stack)
        if self.cv_score:
            oof = cross_val_predict(clone(meta), features, labels, cv=folds, method="predict_proba")
            self.cv_accuracy_ = float((np.unique(labels)[oof.argmax(1)] == labels).mean())
        self.meta_learner_ = meta.fit(features, labels)
        self.n_models_, self.n_classes_ = stack.shape[0], stack.shape[2]
        self.weights_ = np.full(stack.shape[0], 1.0 / stack.shape[0])  # every member feeds the meta-learner
        return self

    def predict_proba(self, probas: np.ndarray) -> np.ndarray:
        stack = check_stack(probas, self.n_models_)
        known = self.meta_learner_.predict_proba(stack_features(stack))
        out = np.zeros((stack.shape[1], self.n_classes_))
        out[:, self.meta_learner_.classes_] = known
        return out
