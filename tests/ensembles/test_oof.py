from __future__ import annotations

import numpy as np
import pytest

from ensembles import OutOfFoldChoice, fold_splitter, stratified_folds


def test_folds_are_as_many_as_asked_while_every_class_fills_them():
    y = np.repeat(np.arange(5), 100)
    assert fold_splitter(y, 5).n_splits == 5
    assert fold_splitter(y, 10).n_splits == 10
    held_out = np.concatenate([fold for _, fold in stratified_folds(y, 5, 0)])
    assert sorted(held_out) == list(range(len(y)))  # each sample held out exactly once


def test_folds_shrink_to_the_smallest_class_and_ignore_absent_labels():
    y = np.array([0] * 50 + [2] * 3)  # label 1 absent, label 2 with 3 samples
    assert fold_splitter(y, 5).n_splits == 3
    assert fold_splitter(np.array([0, 0, 1, 1, 1]), 5).n_splits == 2


def test_a_handful_of_samples_without_two_of_any_class_still_splits():
    y = np.array([0, 1, 2])  # a validation split of three images, one per class
    assert sorted(np.concatenate([fold for _, fold in stratified_folds(y, 5, 0)])) == [0, 1, 2]
    choice = OutOfFoldChoice(y, 5, 0)
    assert choice.n_folds == 3 and len(choice.update(1, np.eye(3)[y])) == 3
    single = OutOfFoldChoice(np.array([4]), 5, 0)  # nothing to hold out: the one fold keeps the first candidate
    assert single.n_folds == 1 and len(single.update(1, np.eye(5)[[4]])) == 1
    assert len(single.update(2, np.eye(5)[[4]])) == 0


def test_choose_scores_a_finished_list_as_update_does_one_by_one():
    y = np.random.default_rng(3).integers(0, 4, 120)
    candidates = noisy_candidates(y, 6, 3)
    streamed = OutOfFoldChoice(y, 5, 0)
    for index, probas in enumerate(candidates):
        streamed.update(index, probas)
    listed = OutOfFoldChoice(y, 5, 0)
    assert np.array_equal(listed.choose(iter(candidates)), streamed.oof_)
    assert np.array_equal(listed.chosen_, streamed.chosen_) and len(set(streamed.chosen_)) > 1
    with pytest.raises(ValueError, match="no candidates"):
        OutOfFoldChoice(y, 5, 0).choose([])


def noisy_candidates(y: np.ndarray, count: int, seed: int) -> list[np.ndarray]:
    """Candidates of equal true quality: each one's best-looking score is luck."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        p = rng.dirichlet(np.ones(4), len(y))
        p[np.arange(len(y)), y] += 0.3
        out.append(p / p.sum(1, keepdims=True))
    return out


def test_out_of_fold_choice_does_not_share_the_maximum_s_optimism():
    y = np.random.default_rng(0).integers(0, 4, 400)
    gaps = []
    for seed in range(5):
        choice, candidates = OutOfFoldChoice(y, 5, seed), noisy_candidates(y, 20, seed)
        for epoch, probas in enumerate(candidates):
            choice.update(epoch, probas)
        accuracies = [float((p.argmax(1) == y).mean()) for p in candidates]
        gaps.append(max(accuracies) - float((choice.oof_.argmax(1) == y).mean()))
        assert set(choice.chosen_) <= set(range(20)) and len(choice.chosen_) == 5
    # the best of 20 equal candidates overstates their accuracy; the out-of-fold choice lands near their mean
    assert np.mean(gaps) > 0.02


def test_each_fold_keeps_the_candidate_best_on_the_other_folds():
    y = np.repeat(np.arange(2), 50)
    choice = OutOfFoldChoice(y, 5, 0)
    good = np.eye(2)[y] * 0.9 + 0.05
    bad = good[:, ::-1]
    assert len(choice.update(0, bad)) == len(y)  # the first candidate is every fold's choice
    assert len(choice.update(1, good)) == len(y)
    assert len(choice.update(2, bad)) == 0
    assert list(choice.chosen_) == [1] * 5
    np.testing.assert_allclose(choice.oof_, good)
    # a candidate right only on fold 0's samples is chosen by no fold: the others see it fail
    partial = bad.copy()
    partial[choice.fold == 0] = good[choice.fold == 0]
    assert len(choice.update(3, partial)) == 0


def test_ties_keep_the_earlier_candidate_unless_the_loss_is_lower():
    y = np.repeat(np.arange(2), 50)
    choice = OutOfFoldChoice(y, 5, 0)
    sure = np.eye(2)[y] * 0.8 + 0.1
    surer = np.eye(2)[y] * 0.98 + 0.01
    choice.update(0, sure)
    assert len(choice.update(1, sure)) == 0
    assert len(choice.update(2, surer)) == len(y)
    assert list(choice.chosen_) == [2] * 5


def test_state_round_trips_and_refuses_other_samples():
    y = np.random.default_rng(1).integers(0, 3, 60)
    first, candidates = OutOfFoldChoice(y, 5, 0), noisy_candidates(y, 6, 1)
    for epoch, probas in enumerate(candidates[:3]):
        first.update(epoch, probas)
    resumed = OutOfFoldChoice(y, 5, 0)
    resumed.load_state_dict(first.state_dict())
    for epoch, probas in enumerate(candidates[3:], start=3):
        first.update(epoch, probas)
        resumed.update(epoch, probas)
    np.testing.assert_array_equal(first.chosen_, resumed.chosen_)
    np.testing.assert_array_equal(first.oof_, resumed.oof_)
    with pytest.raises(ValueError, match="other samples"):
        OutOfFoldChoice(y[:30], 5, 0).load_state_dict(first.state_dict())
    with pytest.raises(ValueError, match="30 samples"):
        first.update(9, candidates[0][:30])
