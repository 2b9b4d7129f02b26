"""Every fitted ensemble's torch form computes its predict_proba (what an exported graph relies on)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ensembles import (
    AdaBoostSAMME,
    Bagging,
    GreedySelection,
    HardVoting,
    SoftVoting,
    Stacking,
    Temperature,
    as_torch,
    scale_probabilities,
)


def problem(n_classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, 200)
    logits = rng.normal(size=(4, 200, n_classes)) + 2.0 * np.eye(n_classes)[y] * rng.random((4, 1, 1))
    stack = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    return stack, y


@pytest.mark.parametrize("n_classes", [2, 5])
@pytest.mark.parametrize("make", [SoftVoting, HardVoting, Bagging, lambda: GreedySelection(max_size=10),
                                  lambda: Stacking(cv=3)])
def test_the_torch_form_computes_predict_proba(make, n_classes):
    stack, y = problem(n_classes)
    estimator = make().fit(stack, y)
    module = as_torch(estimator)
    other, _ = problem(n_classes, seed=1)
    expected = estimator.predict_proba(other)
    got = module(torch.as_tensor(other, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.array_equal(got.argmax(1), estimator.predict(other))


def test_samme_and_temperature_torch_forms():
    stack, y = problem(4)
    samme = AdaBoostSAMME.from_rounds([0.7, 1.2, 0.3, 0.9], 4)
    got = as_torch(samme)(torch.as_tensor(stack, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(got, samme.predict_proba(stack), atol=1e-5)
    probs = stack[0]
    np.testing.assert_allclose(Temperature(2.5)(torch.as_tensor(probs, dtype=torch.float32)).numpy(),
                               scale_probabilities(probs, 2.5), atol=1e-5)


def test_an_estimator_without_a_torch_form_says_so():
    with pytest.raises(TypeError, match="has no torch form"):
        as_torch(object())
