"""Failing trials, retries, NaN losses, clusters and resume after SIGKILL, with real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from hpsearch.cli import main
from tests.conftest import write_recipe

FAULTY = '''
import torch
from pathlib import Path
from timm.models import register_model
from hpsearch.models import TutorialCNN

MARKER = Path({marker!r})


class Exploding(TutorialCNN):
    def forward(self, x):
        if self.training and {always} or (self.training and not MARKER.exists()):
            MARKER.write_text("failed once")
            raise RuntimeError("boom: this backbone explodes in training")
        return super().forward(x)


@register_model
def exploding_cnn(pretrained=False, num_classes=10, in_chans=1, drop_rate=0.0, **ignored):
    return Exploding(num_classes=num_classes, in_chans=in_chans, img_size=8, drop_rate=drop_rate)


name = "faulty"
seed = 0
data = dict(source="digits", image_size=8)
train = dict(batch_size=32, flip=False, optimizer="sgd", lr=0.05)
budget = dict(num_samples=3, max_epochs=2, grace_period=2, max_concurrent=1, max_failures={retries})


def space(trial):
    trial.suggest_float("drop_rate", 0.0, 0.1)
    plan = {plan}
    return plan[trial.number % len(plan)]
'''


def faulty_recipe(folder: Path, plan: str, retries: int = 0, always: bool = True) -> Path:
    body = FAULTY.format(marker=str(folder / "marker"), always=always, retries=retries, plan=plan)
    return write_recipe(folder, body, "faulty.py")


@pytest.mark.slow
def test_a_raising_and_a_nan_trial_fail_alone(tmp_path):
    plan = '[{"backbone": "tutorial_cnn"}, {"backbone": "exploding_cnn"}, {"backbone": "tutorial_cnn", "lr": 1e12}]'
    run = tmp_path / "run"
    assert main(["tune", str(faulty_recipe(tmp_path, plan)), "--out", str(run)]) == 0
    trials = pd.read_csv(run / "trials.csv").sort_values("optuna_trial")
    assert trials["status"].tolist() == ["completed", "failed", "failed"]
    errors = trials["error"].fillna("").tolist()
    assert "boom" in errors[1] and "loss became" in errors[2]
    study = optuna.load_study(study_name="faulty", storage=f"sqlite:///{run / 'study.db'}")
    states = [t.state for t in sorted(study.trials, key=lambda t: t.number)]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.FAIL]


@pytest.mark.slow
def test_retries_rescue_a_flaky_trial(tmp_path):
    run = tmp_path / "run"
    recipe = faulty_recipe(tmp_path, '[{"backbone": "exploding_cnn"}]', retries=1, always=False)
    assert main(["tune", str(recipe), "--out", str(run), "--num-samples", "1"]) == 0
    assert (tmp_path / "marker").is_file()  # it did fail once
    assert pd.read_csv(run / "trials.csv")["status"].tolist() == ["completed"]


@pytest.mark.slow
def test_all_trials_failing_exits_non_zero_with_the_first_reason(tmp_path, capsys):
    recipe = faulty_recipe(tmp_path, '[{"backbone": "exploding_cnn"}]')
    assert main(["tune", str(recipe), "--out", str(tmp_path / "run"), "--num-samples", "2"]) == 1
    err = capsys.readouterr().err
    assert "No trial finished successfully" in err and "boom" in err and "Traceback" not in err


SMALL = '''
name = "small"
seed = 0
data = dict(source="digits", image_size=8)
train = dict(batch_size=32, flip=False)
budget = dict(num_samples=4, max_epochs=2, grace_period=2, max_concurrent=2)

def space(trial):
    trial.suggest_float("lr", 1e-3, 1e-2, log=True)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_join_a_real_ray_head_on_localhost(tmp_path):
    port = free_port()
    ray_cli = Path(sys.executable).with_name("ray")
    # Ray >= 2.59 authenticates cluster clients: the head and the driver share a token (set in their
    # environments only; the driver runs as its own process so this test leaves no Ray state behind)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": os.urandom(16).hex()}
    head = subprocess.Popen([str(ray_cli), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                             "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats", "--block"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(1)
        time.sleep(3)
        run = tmp_path / "run"
        storage = tmp_path / "shared-storage"
        result = subprocess.run([sys.executable, "-m", "hpsearch.cli", "tune", str(write_recipe(tmp_path, SMALL)),
                                 "--out", str(run), "--address", f"127.0.0.1:{port}", "--storage", str(storage)],
                                env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        assert (storage / "run-ray").is_dir() and not (run / "ray").exists()
        trials = pd.read_csv(run / "trials.csv")
        assert len(trials) == 4 and set(trials["status"]) == {"completed"}
        assert all((run / "trials" / t / "model.pt").is_file() for t in trials["trial_id"])
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)


@pytest.mark.slow
def test_trials_run_on_both_nodes_of_a_two_node_cluster(tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        cluster.wait_for_nodes()
        run = tmp_path / "run"
        assert main(["tune", str(write_recipe(tmp_path, SMALL)), "--out", str(run), "--address", cluster.address]) == 0
        trials = pd.read_csv(run / "trials.csv")
        assert trials["node_id"].nunique() == 2
    finally:
        ray.shutdown()
        cluster.shutdown()


SLOW = '''
name = "killme"
seed = 0
data = dict(source="digits", image_size=16)
train = dict(batch_size=16, flip=False, backbone="resnet10t")
budget = dict(num_samples=6, max_epochs=3, grace_period=3, max_concurrent=2)

def space(trial):
    trial.suggest_float("lr", 1e-3, 1e-2, log=True)
'''


def finished_trial_dirs(experiment: Path, epochs: int) -> set[str]:
    done = set()
    for result in experiment.glob("*/result.json"):
        lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if len(lines) >= epochs:
            done.add(result.parent.name)
    return done


@pytest.mark.slow
def test_sigkill_then_resume_loses_and_duplicates_nothing(tmp_path):
    recipe = write_recipe(tmp_path, SLOW)
    run = tmp_path / "run"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "tune.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "hpsearch.cli", "tune", str(recipe), "--out", str(run)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 300
    before = set()
    while time.time() < deadline and proc.poll() is None:
        before = finished_trial_dirs(run / "ray", 3)
        if len(before) >= 2:
            break
        time.sleep(0.5)
    assert proc.poll() is None, (tmp_path / "tune.log").read_text()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    log.close()
    assert not (run / "trials.csv").exists()
    assert main(["resume", str(run)]) == 0
    trials = pd.read_csv(run / "trials.csv")
    history = pd.read_csv(run / "history.csv")
    assert len(trials) == 6 and trials["trial_id"].is_unique and trials["optuna_trial"].is_unique
    assert set(trials["status"]) == {"completed"}
    assert not history.duplicated(["trial_id", "epoch"]).any()
    study = optuna.load_study(study_name="killme", storage=f"sqlite:///{run / 'study.db'}")
    running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert running == []
    complete = {t.number for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))}
    assert complete == set(trials["optuna_trial"])
    finished_before = {name.split("_")[2] for name in before}  # run_trial_<id>_...
    assert finished_before <= set(trials["trial_id"])
    summary = {"finished_before_kill": len(before), "after_resume": len(trials),
               "duplicates": int(trials["trial_id"].duplicated().sum()), "lost": 6 - len(trials),
               "orphaned_optuna_trials_closed": len(study.get_trials(states=(optuna.trial.TrialState.FAIL,)))}
    (Path(os.environ.get("HPSEARCH_RESUME_REPORT", tmp_path / "resume.json"))).write_text(json.dumps(summary))
