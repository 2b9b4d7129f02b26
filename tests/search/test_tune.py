"""A real, small Ray Tune + Optuna + ASHA search on the digits."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import optuna
import pandas as pd
import pytest
import torch

from hpsearch.cli import main
from hpsearch.rundir import read_history, read_trials
from tests.conftest import write_recipe

RECIPE = '''
name = "tiny"
seed = 3
data = dict(source="digits", image_size=8)
train = dict(batch_size=32, flip=False, patience=3)
budget = dict(num_samples=4, max_epochs=3, grace_period=1, reduction_factor=2, max_concurrent=2)

def space(trial, options):
    trial.suggest_categorical("backbone", ["tutorial_cnn"])
    trial.suggest_float("lr", 1e-5, 1e-2, log=True)
    trial.suggest_float("drop_rate", 0.0, 0.3)
'''


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    recipe = write_recipe(folder, RECIPE)
    cwd = os.getcwd()
    os.chdir(folder)  # a relative --out, as people type it
    try:
        code = main(["tune", str(recipe), "--out", "run", "--cpus-per-trial", "1"])
    finally:
        os.chdir(cwd)
    assert code == 0
    return folder / "run"


@pytest.mark.slow
def test_run_directory_layout(tiny_run):
    for name in ("recipe.py", "config.json", "env.json", "split.csv", "study.db", "trials.csv", "history.csv"):
        assert (tiny_run / name).is_file(), name
    assert (tiny_run / "ray").is_dir()
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["seed"] == 3 and config["budget"]["num_samples"] == 4
    env = json.loads((tiny_run / "env.json").read_text())
    assert env["seed"] == 3 and env["packages"]["torch"] and env["packages"]["ray"]


@pytest.mark.slow
def test_trials_history_and_study_agree(tiny_run):
    trials = read_trials(tiny_run)
    history = read_history(tiny_run)
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tiny_run / 'study.db'}")
    assert len(trials) == 4 and trials["trial_id"].is_unique
    assert set(trials["status"]) == {"completed"}
    assert (trials["stop_reason"] == "asha").any()  # the pruned branch below is exercised
    assert set(trials["origin"]) == {"search"} and trials["feasible"].all()
    assert (trials["parameters"] > 1000).all() and (trials["ms_per_image"] > 0).all()
    assert (trials["ms_per_image_b32"] > 0).all()
    assert {"lr", "drop_rate", "backbone", "epochs", "stopped_early", "val_acc", "val_loss", "train_acc",
            "wall_s"} <= set(trials.columns)
    study_trials = {t.number: t for t in study.get_trials()}
    assert sorted(study_trials) == sorted(trials["optuna_trial"])
    for row in trials.itertuples():
        frame = history[history["trial_id"] == row.trial_id]
        assert list(frame["epoch"]) == list(range(1, row.epochs + 1))
        assert math.isclose(frame["val_acc"].max(), row.val_acc)
        assert row.stopped_early == (row.epochs < 3)
        st = study_trials[row.optuna_trial]
        # a trial ASHA stopped is PRUNED (TPE ranks it below every finished trial), with its whole curve
        stopped_by_asha = row.stop_reason == "asha"
        assert st.state == (optuna.trial.TrialState.PRUNED if stopped_by_asha else optuna.trial.TrialState.COMPLETE)
        assert math.isclose(st.value, row.val_acc)
        assert math.isclose(st.params["lr"], row.lr) and math.isclose(st.params["drop_rate"], row.drop_rate)
        # Ray hands Optuna every epoch but the last as an intermediate value; the last is the trial's value (and,
        # for a pruned trial, its last intermediate value too)
        best_so_far = dict(zip(frame["epoch"], frame["best_val_acc"], strict=True))
        assert sorted(st.intermediate_values) == list(range(1, row.epochs + stopped_by_asha))
        for step, value in st.intermediate_values.items():
            assert math.isclose(value, best_so_far[step])


@pytest.mark.slow
def test_each_trial_keeps_its_best_checkpoint_and_val_probs(tiny_run):
    trials = read_trials(tiny_run)
    split = pd.read_csv(tiny_run / "split.csv")
    val_labels = split.loc[split["subset"] == "val", "label"].to_numpy()
    for row in trials.itertuples():
        folder = tiny_run / "trials" / row.trial_id
        probs = np.load(folder / "val_probs.npy")
        assert probs.shape == (len(val_labels), 10)
        assert math.isclose((probs.argmax(1) == val_labels).mean(), row.val_acc, abs_tol=1e-6)
        best = json.loads((folder / "best.json").read_text())
        assert best["epoch"] == row.best_epoch and best["optuna_trial"] == row.optuna_trial
        state = torch.load(folder / "model.pt", weights_only=True)
        assert "fc.weight" in state


@pytest.mark.slow
def test_same_folder_again_needs_resume(tiny_run, capsys):
    code = main(["tune", str(tiny_run / "recipe.py"), "--out", str(tiny_run)])
    assert code == 2  # bad input: a folder that holds a search
    assert "already holds a search" in capsys.readouterr().err
