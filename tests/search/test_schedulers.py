"""Schedulers by name, and searches that run with each of them."""

from __future__ import annotations

import optuna
import pytest
from ray.tune.schedulers import ASHAScheduler, HyperBandForBOHB, MedianStoppingRule

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
