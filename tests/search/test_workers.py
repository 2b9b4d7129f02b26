"""Multi-worker trials (``budget.workers_per_trial``): Ray Train workers, DDP over gloo, on the digits."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time

import numpy as np
import optuna
import pandas as pd
import pytest

from hpsearch.cli import main
from hpsearch.errors import RecipeError
from hpsearch.rundir import read_history, read_trials
from hpsearch.search.budget import BudgetConfig
from hpsearch.training.parallel import DataParallel
from tests.conftest import start_tune, write_recipe

# no augmentation, dropout or BatchNorm: the only difference between 1 and 2 workers is how the batch is split
SAME_PATH = '''
name = "{name}"
seed = 0
data = dict(source="digits", image_size=8)
train = dict(backbone="tutorial_cnn", batch_size=32, flip=False, rotation=0.0, zoom=0.0, translate=0.0,
             drop_rate=0.0, patience=10, lr=3e-3)
budget = dict(num_samples=1, max_epochs=3, scheduler="fifo", cpus_per_trial=1, workers_per_trial={workers})

def space(trial, options):
    trial.suggest_float("weight_decay", 1e-4, 1e-3, log=True)
'''

# the recipe's defaults run first, one at a time (2 CPUs, 2 workers per trial): the first learns; the second, with
# lr=1e-6, does not, and ASHA stops it after epoch 1 (before the SIGKILL, which comes during the third trial:
# ASHA's rungs are not part of what a resume restores)
ASHA = '''
name = "killme"
seed = 1
data = dict(source="digits", image_size=8)
train = dict(backbone="tutorial_cnn", batch_size=32, flip=False, patience=10)
budget = dict(num_samples=3, max_epochs=2, grace_period=1, reduction_factor=2, cpus_per_trial=1,
              workers_per_trial=2, startup_trials=1)  # the second default is no start-up trial: ASHA may stop it
defaults = [dict(lr=3e-3), dict(lr=1e-6)]

def space(trial, options):
    trial.suggest_categorical("lr", [3e-3, 1e-6])
'''


def tune_run(tmp_path, body: str, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    recipe = write_recipe(tmp_path, body, f"{name}.py")
    assert main(["tune", str(recipe), "--out", str(tmp_path / name)]) == 0
    return read_trials(tmp_path / name), read_history(tmp_path / name)


@pytest.mark.slow
def test_two_workers_follow_one_worker_at_the_same_global_batch(tmp_path):
    _, one = tune_run(tmp_path, SAME_PATH.format(name="one", workers=1), "one")
    trials, two = tune_run(tmp_path, SAME_PATH.format(name="two", workers=2), "two")
    assert list(two["epoch"]) == [1, 2, 3] and trials["status"].tolist() == ["completed"]
    assert one["train_loss"].iloc[-1] < one["train_loss"].iloc[0]  # it learns, so the curves say something
    for column in ("train_loss", "val_loss", "val_acc"):
        np.testing.assert_allclose(two[column], one[column], rtol=2e-3, atol=2e-3, err_msg=column)
    model_folder = tmp_path / "two" / "trials" / trials["trial_id"].iloc[0]
    assert (model_folder / "model.pt").is_file()  # the run directory holds its model as for any trial
    assert not any((tmp_path / "two" / "ray-workers").glob("*"))  # Ray Train's copies are gone


@pytest.mark.slow
def test_asha_stops_a_multi_worker_trial_and_a_sigkill_then_resume_loses_and_duplicates_nothing(tmp_path):
    recipe = write_recipe(tmp_path, ASHA)
    run = tmp_path / "run"
    proc = start_tune(recipe, run, tmp_path / "tune.log")
    deadline, started = time.time() + 400, 0
    while time.time() < deadline and proc.poll() is None and started < 3:
        started = sum(1 for _ in (run / "ray").glob("*/checkpoint_*"))  # trials with an epoch checkpointed
        time.sleep(0.5)
    assert proc.poll() is None, (tmp_path / "tune.log").read_text()[-3000:]
    proc.kill()  # the driver only, as `kill -9 <pid>` does
    proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    assert main(["resume", str(run)]) == 0
    trials, history = read_trials(run), read_history(run)
    assert len(trials) == 3 and trials["trial_id"].is_unique and trials["optuna_trial"].is_unique
    assert set(trials["status"]) == {"completed"}
    stopped = trials[trials["stop_reason"] == "asha"]
    assert (stopped["epochs"] == 1).all() and 1e-6 in set(stopped["lr"])  # the trial that cannot learn, at least
    assert not history.duplicated(["trial_id", "epoch"]).any()
    for trial_id, epochs in history.groupby("trial_id")["epoch"]:  # every epoch from 1 on, none twice
        assert sorted(epochs) == list(range(1, len(epochs) + 1)), trial_id
    study = optuna.load_study(study_name="killme", storage=f"sqlite:///{run / 'study.db'}")
    assert study.get_trials(states=(optuna.trial.TrialState.RUNNING,)) == []
    assert json.loads((run / "config.json").read_text())["budget"]["workers_per_trial"] == 2
    assert not any((run / "ray-workers").glob("*"))


def test_more_workers_than_the_cluster_has_is_one_line(tmp_path, capsys):
    recipe = write_recipe(tmp_path, ASHA.replace("workers_per_trial=2", "workers_per_trial=64"))
    assert main(["tune", str(recipe), "--out", str(tmp_path / "run")]) != 0
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "64 workers" in message and "budget.workers_per_trial to at most" in message


def test_workers_per_trial_is_checked():
    with pytest.raises(RecipeError, match="workers_per_trial must be at least 1"):
        BudgetConfig(workers_per_trial=0).validate()
    with pytest.raises(RecipeError, match="does not support multi-worker trials"):
        BudgetConfig(workers_per_trial=2, scheduler="pbt").validate()
    BudgetConfig(workers_per_trial=2, scheduler="hyperband").validate()


def test_each_worker_trains_on_an_equal_slice_of_every_batch():
    index = np.arange(12)
    slices = [DataParallel(rank, 3).shard(index) for rank in range(3)]
    assert sorted(np.concatenate(slices)) == list(index) and {len(s) for s in slices} == {4}
    DataParallel(0, 2).check_batch(32, pairs=True)
    with pytest.raises(ValueError, match="multiple of budget.workers_per_trial"):
        DataParallel(0, 3).check_batch(32, pairs=False)
    with pytest.raises(ValueError, match="even multiple"):
        DataParallel(0, 2).check_batch(6, pairs=True)  # mixup pairs images within each worker's slice of 3
