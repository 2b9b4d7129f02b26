"""Schedulers by name, and searches that run with each of them."""

from __future__ import annotations

import time

import optuna
import pytest
from ray.tune.schedulers import ASHAScheduler, HyperBandForBOHB, MedianStoppingRule, TrialScheduler

from hpsearch.cli import main
from hpsearch.rundir import read_trials
from hpsearch.search.budget import BudgetConfig
from hpsearch.search.schedulers import make_scheduler
from tests.conftest import write_recipe


def test_each_scheduler_by_name_counts_epochs():
    assert isinstance(make_scheduler(BudgetConfig(scheduler="asha")), ASHAScheduler)
    hyperband = make_scheduler(BudgetConfig(scheduler="hyperband", max_epochs=9, reduction_factor=3))
    assert isinstance(hyperband, HyperBandForBOHB) and hyperband._time_attr == "epoch"
    median = make_scheduler(BudgetConfig(scheduler="median", grace_period=3))
    assert isinstance(median, MedianStoppingRule) and median._grace_period == 3
    assert make_scheduler(BudgetConfig(scheduler="fifo")) is None


def test_asha_waits_a_third_of_the_epochs_unless_told():
    """ASHA's first rung by default: a third of max_epochs, at least 2 (an early rung ranks on the short-horizon
    advantage of low learning rates); an explicit grace_period wins, and it is what ASHA and the rungs use."""
    from hpsearch.search.export import asha_rungs

    assert [BudgetConfig(max_epochs=e).grace_epochs for e in (1, 2, 3, 6, 8, 12, 20)] == [1, 2, 2, 2, 2, 4, 6]
    assert BudgetConfig(max_epochs=12, grace_period=1).grace_epochs == 1
    asha = make_scheduler(BudgetConfig(scheduler="asha", max_epochs=12))
    milestones = {rung[0] if isinstance(rung, tuple) else rung for rung in asha._brackets[0]._rungs}
    assert milestones == asha_rungs(BudgetConfig(max_epochs=12)) == {4, 12}
    assert BudgetConfig(scheduler="pbt", max_epochs=12).interval == 4


class FakeTrial:
    """What a scheduler reads of a Ray trial: its id and its config (with the Optuna trial number)."""

    def __init__(self, number: int):
        self.trial_id, self.config = f"t{number}", {"optuna_trial": number}

    def __eq__(self, other) -> bool:  # the median rule keys its records by trial
        return isinstance(other, FakeTrial) and other.trial_id == self.trial_id

    def __hash__(self) -> int:
        return hash(self.trial_id)


class FakeController:
    """What the median rule asks of Ray's controller when too few trials reached an epoch: none waits."""

    def get_live_trials(self) -> list:
        return []


def decisions(scheduler, scores: list[tuple[int, float]], epoch: int = 2) -> dict[int, str]:
    """Each trial's first result at ``epoch`` in the given order -> the scheduler's decision, by trial number."""
    scheduler.set_search_properties("val_acc", "max")
    out = {}
    for number, score in scores:
        trial = FakeTrial(number)
        scheduler.on_trial_add(None, trial)
        for early in range(1, epoch):
            scheduler.on_trial_result(FakeController(), trial, {"epoch": early, "val_acc": score})
        out[number] = scheduler.on_trial_result(FakeController(), trial, {"epoch": epoch, "val_acc": score})
    return out


def test_asha_never_stops_a_start_up_trial_but_ranks_it():
    """A slow backbone's start-up trial reaching ASHA's first rung behind two faster trials (the real benchmark's
    seed 4): plain ASHA stops it, hpsearch's continues it; its score still joins the rung, so a later trial that
    scores the same is stopped."""
    budget = BudgetConfig(scheduler="asha", max_epochs=8)  # first rung at epoch 2, keeps the best third
    order = [(2, 0.46), (3, 0.46), (0, 0.44), (4, 0.44)]
    assert decisions(make_scheduler(budget), order)[0] == TrialScheduler.STOP
    asha = make_scheduler(budget, startup_trials=2)
    decided = decisions(asha, order)
    assert decided == {2: "CONTINUE", 3: "CONTINUE", 0: "CONTINUE", 4: "STOP"}
    assert asha._brackets[0]._rungs[-1][1]["t0"] == 0.44 and asha._num_stopped == 1
    # at max_t ASHA stops every trial, a start-up trial too: that only ends it (Optuna gets its last result once)
    assert asha.on_trial_result(FakeController(), FakeTrial(0), {"epoch": 8, "val_acc": 0.7}) == TrialScheduler.STOP


def test_the_median_rule_never_stops_a_start_up_trial():
    median_budget = BudgetConfig(scheduler="median", max_epochs=8, grace_period=2)
    order = [(3, 0.6), (4, 0.6), (5, 0.6), (0, 0.3), (6, 0.3)]
    assert decisions(make_scheduler(median_budget), order)[0] == TrialScheduler.STOP
    median = make_scheduler(median_budget, startup_trials=1)
    assert decisions(median, order) == {3: "CONTINUE", 4: "CONTINUE", 5: "CONTINUE", 0: "CONTINUE", 6: "STOP"}
    assert FakeTrial(6) in median._stopped_trials and FakeTrial(0) not in median._stopped_trials
    later = median.on_trial_result(FakeController(), FakeTrial(0), {"epoch": 3, "val_acc": 0.3})  # still exempt
    assert later == TrialScheduler.CONTINUE


SLOW_START = '''
name = "slowstart"
seed = 0
data = dict(source="digits", image_size=8)
budget = dict(num_samples=5, max_epochs=4, grace_period=2, reduction_factor=2, max_concurrent=2,
              startup_trials={startup}, sampler="tpe", scheduler="asha")

def space(trial, options):
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)
'''


def slow_start_trial(config: dict) -> None:
    """Trial 0 learns slowly and ends best, reaching epoch 2 after the others; the rest score by their number.
    Every score rises or stays from epoch to epoch, so it is also the best so far."""
    from ray import tune

    number = config["optuna_trial"]
    for epoch in range(1, 5):
        if number == 0:
            time.sleep(3.0 if epoch <= 2 else 0.0)  # the others reach the rung at epoch 2 first
            score = 0.2 * epoch
        else:
            score = 0.5 - 0.02 * number
        tune.report({"epoch": epoch, "val_acc": score, "best_val_acc": score, "stopped_by_patience": False})


@pytest.mark.slow
@pytest.mark.parametrize("startup", [1, 0])
def test_a_slow_start_up_trial_trains_to_the_end_in_a_real_search(tmp_path, startup):
    """Through the real Tuner, OptunaSearch and ASHA: with one start-up trial, the slow one runs all its epochs
    and Optuna sees it COMPLETE (best of the search); with none, ASHA stops it at epoch 2 and Optuna sees it PRUNED.
    Later trials are stopped as before."""
    from ray import tune

    from hpsearch.recipe import load_recipe
    from hpsearch.search.session import ray_session
    from hpsearch.search.tune import SearchOptions, build_tuner

    recipe = load_recipe(write_recipe(tmp_path, SLOW_START.format(startup=startup)))
    run = tmp_path / "run"
    run.mkdir()
    trainable = tune.with_resources(slow_start_trial, {"cpu": 1})
    with ray_session(None, run):
        results = build_tuner(recipe, run, trainable, SearchOptions(verbose=0), 1, 5).fit()
    epochs = {r.config["optuna_trial"]: r.metrics["epoch"] for r in results}
    study = optuna.load_study(study_name="slowstart", storage=f"sqlite:///{run / 'study.db'}")
    first = study.trials[0].state
    if startup:
        assert epochs[0] == 4 and first == optuna.trial.TrialState.COMPLETE and study.best_trial.number == 0
    else:
        assert epochs[0] == 2 and first == optuna.trial.TrialState.PRUNED
    assert any(epochs[number] == 2 for number in range(1, 5))  # ASHA still stops later trials


def test_pbt_options_are_checked():
    from hpsearch.config import build_section
    from hpsearch.errors import RecipeError

    assert BudgetConfig(scheduler="pbt", max_epochs=10, grace_period=3).interval == 3
    assert BudgetConfig(scheduler="pbt", max_epochs=10, perturbation_interval=2).interval == 2
    with pytest.raises(RecipeError, match="perturbation_interval must be between 1 and max_epochs - 1"):
        build_section(BudgetConfig, {"max_epochs": 4, "perturbation_interval": 4}, "budget")


SEARCH = '''
name = "sched"
seed = 1
data = dict(source="digits", image_size=8)
train = dict(batch_size=32, flip=False, patience=10)
budget = dict(num_samples=6, max_epochs=4, grace_period=1, reduction_factor=2, max_concurrent=2,
              scheduler={scheduler!r}, sampler={sampler!r})

def space(trial, options):
    trial.suggest_categorical("backbone", ["tutorial_cnn"])
    trial.suggest_float("lr", 1e-5, 3e-2, log=True)
'''


@pytest.mark.slow
@pytest.mark.parametrize(("scheduler", "sampler"), [("hyperband", "tpe"), ("median", "gp")])
def test_a_search_runs_with_hyperband_and_with_the_median_rule(tmp_path, scheduler, sampler):
    run = tmp_path / "run"
    recipe = write_recipe(tmp_path, SEARCH.format(scheduler=scheduler, sampler=sampler))
    assert main(["tune", str(recipe), "--out", str(run)]) == 0
    trials = read_trials(run)
    assert len(trials) == 6 and set(trials["status"]) == {"completed"}
    assert set(trials["stop_reason"]) <= {"max_epochs", scheduler}
    study = optuna.load_study(study_name="sched", storage=f"sqlite:///{run / 'study.db'}")
    stopped = set(trials.loc[trials["stop_reason"] == scheduler, "optuna_trial"])
    assert {t.number for t in study.trials if t.state == optuna.trial.TrialState.PRUNED} == stopped
    if scheduler == "hyperband":
        assert stopped  # Hyperband's brackets stop trials even with 2 at a time (paused trials free their slot)
