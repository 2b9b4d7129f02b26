from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification
from sklearn.ensemble import AdaBoostClassifier
from sklearn.tree import DecisionTreeClassifier

from ensembles import AdaBoostSAMME, average_state_dicts, bootstrap_indices, greedy_soup, samme_step, uniform_soup


def test_bootstrap_members_differ_and_keep_class_sizes():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    samples = bootstrap_indices(labels, 4, random_state=0)
    assert len({tuple(s) for s in samples}) == 4
    for sample in samples:
        assert len(sample) == 100 and np.bincount(labels[sample]).tolist() == [50, 30, 20]
        assert len(np.unique(sample)) < 100  # drawn with replacement
    assert all(np.array_equal(a, b) for a, b in zip(samples, bootstrap_indices(labels, 4, random_state=0), strict=True))


def test_samme_matches_scikit_learn():
    X, y = make_classification(n_samples=300, n_classes=3, n_informative=4, random_state=0)
    reference = AdaBoostClassifier(DecisionTreeClassifier(max_depth=1), n_estimators=5, random_state=0).fit(X, y)
    members = np.stack([np.eye(3)[estimator.predict(X)] for estimator in reference.estimators_])
    model = AdaBoostSAMME().fit(members, y)
    # each member was trained with the weights SAMME gave it: refitting on them reproduces it
    for estimator, weight in zip(reference.estimators_, model.sample_weights_, strict=True):
        refit = DecisionTreeClassifier(max_depth=1, random_state=estimator.random_state).fit(X, y, sample_weight=weight)
        assert np.array_equal(refit.predict(X), estimator.predict(X))
    np.testing.assert_allclose(model.alphas_, reference.estimator_weights_, rtol=1e-6)
    np.testing.assert_allclose(model.errors_, reference.estimator_errors_, rtol=1e-6)
    np.testing.assert_allclose(model.predict_proba(members), reference.predict_proba(X), atol=1e-6)


def test_samme_step_by_hand():
    y = np.array([0, 0, 1, 2])
    alpha, weight, error = samme_step(np.full(4, 0.25), y, np.array([0, 1, 1, 2]), n_classes=3)
    assert error == pytest.approx(0.25) and alpha == pytest.approx(np.log(3) + np.log(2))
    np.testing.assert_allclose(weight, np.array([1, 6, 1, 1]) / 9)  # the miss is weighted up by exp(alpha) = 6
    useless, same, _ = samme_step(np.full(4, 0.25), y, np.array([1, 1, 0, 0]), n_classes=3)
    assert useless == 0.0 and np.allclose(same, 0.25)


def test_soup_of_identical_weights_equals_the_member():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    soup = average_state_dicts([state, state, state])
    assert all(torch.equal(soup[k], state[k]) for k in state)
    result = uniform_soup([state, state], evaluate=lambda s: 0.5)
    assert all(torch.equal(result.state[k], state[k]) for k in state)


def test_soup_averages_and_greedy_soup_keeps_only_helpful_ingredients():
    a = {"w": torch.zeros(2), "n": torch.tensor(3)}
    b = {"w": torch.full((2,), 2.0), "n": torch.tensor(5)}
    bad = {"w": torch.full((2,), 100.0), "n": torch.tensor(1)}
    soup = average_state_dicts([a, b], weights=[1, 3])
    assert torch.allclose(soup["w"], torch.full((2,), 1.5)) and soup["n"] == 3
    score = lambda s: -float((s["w"] - 1.0).abs().sum())  # noqa: E731  best at w = 1
    result = greedy_soup([a, b, bad], [score(a), score(b), score(bad)], score)
    assert sorted(result.members) == [0, 1] and result.score == pytest.approx(0.0)
    with pytest.raises(ValueError, match="one architecture"):
        average_state_dicts([a, {"w": torch.zeros(3), "n": torch.tensor(1)}])
