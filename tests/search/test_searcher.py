"""What the searcher tells Optuna: early stops as PRUNED trials with their curve, costs and constraints."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from hpsearch.search.searcher import PausingLimiter, Searcher, constraint_values, ended_early


def space(trial):
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)


def searcher(limits=None) -> Searcher:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return Searcher(space=space, metric="best_val_acc", mode="max", sampler=optuna.samplers.RandomSampler(seed=0),
                    max_epochs=6, limits=limits)


def run(search: Searcher, trial_id: str, epochs: int, **last) -> optuna.trial.FrozenTrial:
    """Suggest a trial, report ``epochs`` epochs (the last one as the completion, as Ray does)."""
    assert search.suggest(trial_id) is not None
    for epoch in range(1, epochs):
        search.on_trial_result(trial_id, {"best_val_acc": 0.1 * epoch, "training_iteration": epoch, "epoch": epoch})
    result = {"best_val_acc": 0.1 * epochs, "training_iteration": epochs, "epoch": epochs, **last}
    search.on_trial_complete(trial_id, result)
    return search._ot_study.trials[-1]


def test_a_trial_stopped_by_the_scheduler_is_pruned_with_its_whole_curve():
    trial = run(searcher(), "a", 2)
    assert trial.state == TrialState.PRUNED
    assert trial.intermediate_values == {1: pytest.approx(0.1), 2: pytest.approx(0.2)}
    assert trial.value == pytest.approx(0.2)


def test_trials_that_ran_their_course_stay_complete():
    search = searcher()
    assert run(search, "full", 6).state == TrialState.COMPLETE
    patient = run(search, "patience", 3, stopped_by_patience=True)
    assert patient.state == TrialState.COMPLETE and patient.value == pytest.approx(0.3)


def test_tpe_ranks_a_pruned_trial_below_every_finished_one():
    from optuna.samplers._tpe.sampler import _split_trials

    search = searcher()
    run(search, "short-but-high", 2)  # 0.2 after two epochs, then stopped
    run(search, "finished", 6, best_val_acc=0.15)
    study = search._ot_study
    below, above = _split_trials(study, study.get_trials(deepcopy=False), 1)
    assert [t.state for t in below] == [TrialState.COMPLETE]  # the finished trial is the "good" one


def test_costs_become_attributes_and_bounds_become_constraints():
    search = searcher(limits={"ms_per_image": 2.0, "parameters": 1e6})
    trial = run(search, "slow", 6, ms_per_image=3.5, parameters=5e5, ms_per_image_b32=0.5)
    assert trial.user_attrs == {"parameters": 5e5, "ms_per_image": 3.5, "ms_per_image_b32": 0.5}
    assert trial.constraints == {"ms_per_image": pytest.approx(1.5), "parameters": pytest.approx(-5e5)}
    study = search._ot_study
    with pytest.raises(ValueError, match="No feasible trials"):  # Optuna's best trial is a feasible one
        _ = study.best_trial
    run(search, "fast", 6, best_val_acc=0.1, ms_per_image=1.0, parameters=5e5)
    assert study.best_trial.user_attrs["ms_per_image"] == 1.0  # worse accuracy, but within the bounds


def test_helpers():
    assert ended_early({"epoch": 2}, 6) and not ended_early({"epoch": 6}, 6)
    assert not ended_early({"epoch": 2, "stopped_by_patience": True}, 6)
    assert constraint_values({"ms_per_image": 3.0}, {"ms_per_image": 2.0, "parameters": 10.0}) == {"ms_per_image": 1.0}


def test_a_paused_trial_frees_its_slot_until_it_resumes():
    limiter = PausingLimiter(searcher(), max_concurrent=1)
    assert limiter.suggest("a") is not None
    assert limiter.suggest("b") is None  # the one slot is taken
    limiter.on_pause("a")
    assert limiter.suggest("b") is not None
    limiter.on_unpause("a")
    assert limiter.suggest("c") is None
    limiter.on_trial_complete("b", {"best_val_acc": 0.5, "epoch": 6, "training_iteration": 6})
    limiter.on_trial_complete("a", {"best_val_acc": 0.4, "epoch": 6, "training_iteration": 6})
    assert limiter.suggest("c") is not None


def test_a_trial_stopped_while_paused_is_judged_by_the_last_result_it_reported():
    search = searcher()
    for trial_id, epochs in (("done", 6), ("cut", 3)):
        search.suggest(trial_id)
        for epoch in range(1, epochs + 1):
            search.on_trial_result(trial_id, {"best_val_acc": 0.1 * epoch, "training_iteration": epoch, "epoch": epoch})
        search.on_trial_complete(trial_id)  # Hyperband stops a paused trial without a result
    done, cut = search._ot_study.trials
    assert done.state == TrialState.COMPLETE and done.value == pytest.approx(0.6)
    assert cut.state == TrialState.PRUNED and cut.value == pytest.approx(0.3)
    assert sorted(cut.intermediate_values) == [1, 2, 3]
