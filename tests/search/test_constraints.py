"""Deployment bounds: trials over max_params or max_ms_per_image are infeasible, and the best trial is feasible."""

from __future__ import annotations

import optuna
import pytest

from hpsearch.cli import main
from hpsearch.rundir import RunDir, read_trials
from tests.conftest import write_recipe

BOUNDED = '''
name = "bounded"
seed = 0
data = dict(source="digits", image_size=16)
train = dict(batch_size=32, flip=False)
budget = dict(num_samples=4, max_epochs=2, grace_period=2, max_concurrent=2, max_params=1e6)

def space(trial, options):
    trial.suggest_categorical("backbone", ["tutorial_cnn", "resnet10t"])  # about 0.05M and 4.9M parameters
    trial.suggest_float("lr", 1e-3, 1e-2, log=True)
'''


@pytest.mark.slow
def test_a_bound_on_parameters_makes_large_models_infeasible_and_the_best_trial_feasible(tmp_path):
    run = tmp_path / "run"
    assert main(["tune", str(write_recipe(tmp_path, BOUNDED)), "--out", str(run)]) == 0
    trials = read_trials(run)
    large = trials[trials["backbone"] == "resnet10t"]
    assert len(large) >= 1  # the start-up trials try both backbones
    assert (~large["feasible"]).all() and (large["stop_reason"] == "infeasible").all() and (large["epochs"] == 1).all()
    small = trials[trials["backbone"] == "tutorial_cnn"]
    assert small["feasible"].all() and (small["parameters"] < 1e6).all() and (small["ms_per_image"] > 0).all()
    best = RunDir(run).ranked_trials().iloc[0]
    assert best["backbone"] == "tutorial_cnn"
    study = optuna.load_study(study_name="bounded", storage=f"sqlite:///{run / 'study.db'}")
    constraints = {t.number: t.constraints["parameters"] for t in study.trials}
    for row in trials.itertuples():
        assert (constraints[row.optuna_trial] > 0) == (not row.feasible)
    assert main(["report", str(run), "--formats", "csv"]) == 0
    assert (run / "report" / "cost_front.png").is_file()
