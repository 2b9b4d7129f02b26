from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from ensembles import GreedySelection, HardVoting, SoftVoting, Stacking, check_stack


def noisy_member(y, n_classes, accuracy, rng, sharpness=4.0):
    """Probabilities that pick the right class with roughly ``accuracy``."""
    logits = rng.normal(size=(len(y), n_classes))
    right = rng.random(len(y)) < accuracy
    target = np.where(right, y, (y + rng.integers(1, n_classes, len(y))) % n_classes)
    logits[np.arange(len(y)), target] += sharpness
    exp = np.exp(logits - logits.max(1, keepdims=True))
    return exp / exp.sum(1, keepdims=True)


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 600)
    stack = np.stack([noisy_member(y, 4, acc, rng) for acc in (0.62, 0.70, 0.66, 0.55, 0.68)])
    return stack, y


def accuracy(probas, y):
    return float((probas.argmax(1) == y).mean())


def test_averaging_equal_members_is_a_no_op(problem):
    stack, y = problem
    same = np.stack([stack[1]] * 4)
    np.testing.assert_allclose(SoftVoting().fit(same, y).predict_proba(same), stack[1])
    assert np.array_equal(HardVoting().fit(same, y).predict(same), stack[1].argmax(1))


def test_weighted_averaging_and_estimator_contract(problem):
    stack, y = problem
    model = SoftVoting(weights=[0, 1, 0, 0, 3])
    assert model.fit(stack, y) is model and model.get_params() == {"weights": [0, 1, 0, 0, 3]}
    np.testing.assert_allclose(model.predict_proba(stack), 0.25 * stack[1] + 0.75 * stack[4])
    assert model.members() == {1: 0.25, 4: 0.75}
    assert np.array_equal(model.predict(stack), model.predict_proba(stack).argmax(1))
    with pytest.raises(ValueError, match="weights must be"):
        SoftVoting(weights=[1, -1, 0, 0, 0]).fit(stack, y)


def test_averaging_beats_the_members_on_independent_errors(problem):
    stack, y = problem
    best_single = max(accuracy(p, y) for p in stack)
    assert SoftVoting().fit(stack, y).score(stack, y) > best_single
    assert HardVoting().fit(stack, y).score(stack, y) > best_single - 0.02


def test_hard_voting_counts_votes():
    p = lambda c: np.eye(3)[[c]] * 0.9 + 0.1 / 3  # noqa: E731
    stack = np.stack([p(0), p(0), p(2)])
    model = HardVoting().fit(stack, np.array([0]))
    np.testing.assert_allclose(model.predict_proba(stack), [[2 / 3, 0, 1 / 3]], atol=1e-3)
    assert model.predict(stack).tolist() == [0]
    tied = np.stack([p(0), p(1)])  # one vote each: the larger total probability decides, in predict_proba too
    tied[1, 0, 1] = 0.95
    model = HardVoting().fit(tied, np.array([0]))
    assert model.predict(tied).tolist() == [1] == model.predict_proba(tied).argmax(1).tolist()


def test_greedy_picks_the_best_member_first_and_never_loses_accuracy(problem):
    stack, y = problem
    model = GreedySelection(max_size=30, random_state=0).fit(stack, y)
    singles = [accuracy(p, y) for p in stack]
    assert model.trajectory_[0]["member"] == int(np.argmax(singles))
    best_so_far = [step["best_accuracy"] for step in model.trajectory_]
    assert all(b >= a for a, b in zip(best_so_far, best_so_far[1:], strict=False))
    kept = model.trajectory_[model.best_step_ - 1]
    assert kept["accuracy"] == max(step["accuracy"] for step in model.trajectory_)
    assert model.score(stack, y) == pytest.approx(kept["accuracy"])
    assert kept["accuracy"] > max(singles)
    assert np.isclose(model.weights_.sum(), 1.0) and model.best_step_ > 1


def test_greedy_is_seeded(problem):
    stack, y = problem
    tied = np.concatenate([stack, stack])  # every member twice: ties everywhere
    a = GreedySelection(random_state=1).fit(tied, y).trajectory_
    b = GreedySelection(random_state=1).fit(tied, y).trajectory_
    assert a == b


def test_stacking_recovers_a_flipped_member():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 450)
    informative = noisy_member(y, 3, 0.95, rng)
    flipped = informative[:, [1, 2, 0]]  # right answers, wrong class order
    noise = np.stack([noisy_member(y, 3, 0.4, rng) for _ in range(2)])
    stack = np.concatenate([flipped[None], noise])
    assert SoftVoting().fit(stack, y).score(stack, y) < 0.5
    model = Stacking(cv=5, random_state=0, cv_score=True).fit(stack, y)
    assert model.cv_accuracy_ > 0.9 and model.score(stack, y) > 0.9
    np.testing.assert_allclose(model.predict_proba(stack).sum(1), 1.0)


def test_stacking_takes_any_sklearn_classifier(problem):
    stack, y = problem
    model = Stacking(meta_learner=RandomForestClassifier(n_estimators=20, random_state=0), cv_score=True)
    assert 0.0 < model.fit(stack, y).cv_accuracy_ <= 1.0 and model.predict(stack).shape == y.shape
    assert not hasattr(Stacking().fit(stack, y), "cv_accuracy_")  # cross-validated only when asked


def test_bad_stacks_are_rejected(problem):
    stack, y = problem
    with pytest.raises(ValueError, match="shape"):
        check_stack(stack[0])
    with pytest.raises(ValueError, match="fit on 5 models"):
        SoftVoting().fit(stack, y).predict_proba(stack[:3])
    with pytest.raises(ValueError, match="one label per sample"):
        GreedySelection().fit(stack, y[:10])
