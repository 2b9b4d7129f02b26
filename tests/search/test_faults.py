"""Failing trials, retries, NaN losses, clusters and resume after SIGKILL, with real processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest

from hpsearch.cli import main
from hpsearch.rundir import read_history, read_trials
from hpsearch.search.session import RAY_SESSION_FILE, leftover_processes
from tests.conftest import free_port, start_tune, write_recipe

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


def space(trial, options):
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
    trials = read_trials(run).sort_values("optuna_trial")
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
    assert read_trials(run)["status"].tolist() == ["completed"]


@pytest.mark.slow
def test_all_trials_failing_exits_non_zero_with_the_first_reason(tmp_path, capsys):
    recipe = faulty_recipe(tmp_path, '[{"backbone": "exploding_cnn"}]')
    assert main(["tune", str(recipe), "--out", str(tmp_path / "run"), "--num-samples", "2"]) == 1
    err = capsys.readouterr().err
    assert "No trial finished successfully" in err and "boom" in err and "Traceback" not in err
    import ray

    # an error exit shuts the local Ray down too, as Ctrl-C and SIGTERM do
    assert not ray.is_initialized() and not (tmp_path / "run" / RAY_SESSION_FILE).exists()


SMALL = '''
name = "small"
seed = 0
data = dict(source="digits", image_size=16)
train = dict(batch_size=16, flip=False)  # trials of several seconds: both nodes' actors start before the end
budget = dict(num_samples=4, max_epochs=3, grace_period=3, max_concurrent=2)

def space(trial, options):
    trial.suggest_float("lr", 1e-3, 1e-2, log=True)
'''


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
        recipe = write_recipe(tmp_path, SMALL.replace("num_samples=4, max_epochs=3, grace_period=3",
                                                      "num_samples=2, max_epochs=2, grace_period=2"))
        result = subprocess.run([sys.executable, "-m", "hpsearch.cli", "tune", str(recipe),
                                 "--out", str(run), "--address", f"127.0.0.1:{port}", "--storage", str(storage)],
                                env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        assert (storage / "run-ray").is_dir() and not (run / "ray").exists()
        trials = read_trials(run)
        assert len(trials) == 2 and set(trials["status"]) == {"completed"}
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
        # the head node's actor starts at once, the second node's cold (seconds): trials of about 3 s, so that the
        # head's one actor, reused, cannot run all four before the second node's starts (at 3 epochs it once did)
        recipe = write_recipe(tmp_path, SMALL.replace("max_epochs=3, grace_period=3", "max_epochs=12, grace_period=12"))
        assert main(["tune", str(recipe), "--out", str(run), "--address", cluster.address]) == 0
        trials = read_trials(run)
        assert trials["node_id"].nunique() == 2
    finally:
        ray.shutdown()
        cluster.shutdown()


SLOW_SAMPLES = 4  # trials of the SIGKILL test: it kills the search once 2 have finished
SLOW = '''
name = "killme"
seed = 0
data = dict(source="digits", image_size=16)
train = dict(batch_size=16, flip=False, backbone="resnet10t")
budget = dict(num_samples={samples}, max_epochs=3, grace_period=3, max_concurrent=2)

def space(trial, options):
    trial.suggest_float("lr", 1e-3, 1e-2, log=True)
'''


def finished_trial_dirs(experiment: Path, epochs: int) -> set[str]:
    done = set()
    for result in experiment.glob("*/result.json"):
        lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if len(lines) >= epochs:
            done.add(result.parent.name)
    return done


def prune_a_named_checkpoint(experiment: Path) -> Path | None:
    """Rename the checkpoint that Ray's saved state names as an unfinished trial's latest (as pruning between two
    saves of that state would leave it); return the missing path."""
    from ray.tune import ExperimentAnalysis

    for trial in ExperimentAnalysis(str(experiment)).trials:
        if trial.status not in ("TERMINATED", "ERROR") and trial.checkpoint is not None:
            named = Path(trial.checkpoint.path)
            named.rename(named.with_name("checkpoint_099999"))
            return named
    return None


def test_a_checkpoint_pruned_after_rays_last_save_is_replaced_by_the_newest_survivor(tmp_path, monkeypatch):
    import ray.tune

    from hpsearch.search.plan import repair_missing_checkpoints

    class Trial:
        def __init__(self, trial_id, status, path):
            self.trial_id, self.status = trial_id, status
            self.checkpoint = type("Checkpoint", (), {"path": str(path)})()

    folder = tmp_path / "ray" / "trial_a"
    for name, epoch in (("checkpoint_000001", 1), ("checkpoint_000003", 3)):
        (folder / name).mkdir(parents=True)
        (folder / name / "state.txt").write_text(str(epoch))
        os.utime(folder / name, (epoch, epoch))
    (tmp_path / "ray" / "trial_b").mkdir()
    trials = [Trial("a", "PAUSED", folder / "checkpoint_000002"),  # named, pruned; 1 and 3 survive
              Trial("b", "RUNNING", tmp_path / "ray" / "trial_b" / "checkpoint_000004"),  # nothing survives
              Trial("c", "TERMINATED", tmp_path / "ray" / "gone" / "checkpoint_000009")]  # finished: left alone
    monkeypatch.setattr(ray.tune, "ExperimentAnalysis", lambda path: type("Analysis", (), {"trials": trials})())
    assert repair_missing_checkpoints(str(tmp_path / "ray")) == [str(folder / "checkpoint_000002")]
    assert (folder / "checkpoint_000002" / "state.txt").read_text() == "3"  # the newest survivor
    assert not (tmp_path / "ray" / "gone").exists() and not any((tmp_path / "ray" / "trial_b").iterdir())
    assert repair_missing_checkpoints("s3://bucket/run/ray") == []


@pytest.mark.slow
def test_sigkill_then_resume_loses_and_duplicates_nothing(tmp_path, capsys):
    recipe = write_recipe(tmp_path, SLOW.format(samples=SLOW_SAMPLES))
    run = tmp_path / "run"
    proc = start_tune(recipe, run, tmp_path / "tune.log")
    deadline = time.time() + 300
    before = set()
    while time.time() < deadline and proc.poll() is None:
        before = finished_trial_dirs(run / "ray", 3)
        if len(before) >= 2:
            break
        time.sleep(0.5)
    assert proc.poll() is None, (tmp_path / "tune.log").read_text()[-3000:]
    session = json.loads((run / RAY_SESSION_FILE).read_text())["session_dir"]
    proc.kill()  # the driver only, as `kill -9 <pid>` does: Ray's own processes live on
    proc.wait()
    assert not (run / "trials.csv").exists()
    time.sleep(2)
    leftover = leftover_processes(session)
    pruned = prune_a_named_checkpoint(run / "ray")  # the worst moment: a checkpoint Ray's state names is gone
    assert main(["resume", str(run)]) == 0
    if pruned is not None:  # resume put the newest surviving checkpoint in its place (and said so)
        assert f"its checkpoint {pruned.name} was pruned after Ray last saved its state" in capsys.readouterr().err
    assert leftover and not leftover_processes(session)  # resume ended the orphaned Ray before starting its own
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything else of that process group (nothing, normally)
    trials = read_trials(run)
    history = read_history(run)
    assert len(trials) == SLOW_SAMPLES and trials["trial_id"].is_unique and trials["optuna_trial"].is_unique
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
               "duplicates": int(trials["trial_id"].duplicated().sum()), "lost": SLOW_SAMPLES - len(trials),
               "orphaned_optuna_trials_closed": len(study.get_trials(states=(optuna.trial.TrialState.FAIL,)))}
    (Path(os.environ.get("HPSEARCH_RESUME_REPORT", tmp_path / "resume.json"))).write_text(json.dumps(summary))


SLOW_EPOCHS = """
import time
from timm.models import register_model
from hpsearch.models import TutorialCNN


class SlowCNN(TutorialCNN):
    def forward(self, x):
        if self.training:
            time.sleep(0.1)  # about 2 s per epoch: time to interrupt between epochs
        return super().forward(x)


@register_model
def slow_cnn(pretrained=False, num_classes=10, in_chans=1, drop_rate=0.0, **ignored):
    return SlowCNN(num_classes=num_classes, in_chans=in_chans, img_size=8, drop_rate=drop_rate)


name = "interrupted"
seed = 0
data = dict(source="digits", image_size=8)
train = dict(backbone="slow_cnn", batch_size=64, flip=False, lr=3e-3, patience=10)
budget = dict(num_samples=1, max_epochs=3, grace_period=3, max_concurrent=1)


def space(trial, options):
    trial.suggest_float("drop_rate", 0.0, 0.2)
"""


def reported_epochs(run: Path) -> list[int]:
    """Every epoch any trial reported to Ray, in order, across interruptions."""
    epochs = []
    for result in sorted(run.glob("ray*/*/result.json")):
        epochs += [json.loads(line)["epoch"] for line in result.read_text().splitlines() if line.strip()]
    return epochs


def run_until_epoch(argv: list[str], run: Path, epoch: int, sig: int = signal.SIGINT, log: Path | None = None) -> int:
    """Run the CLI in a subprocess; send ``sig`` once ``epoch`` epochs are reported (0: let it finish)."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    out = open(log or os.devnull, "w")
    proc = subprocess.Popen([sys.executable, "-m", "hpsearch.cli", *argv], env=env, stdout=out,
                            stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if epoch and len(reported_epochs(run)) >= epoch:
            proc.send_signal(sig)
            break
        time.sleep(0.1)
    code = proc.wait(timeout=300)
    out.close()
    return code


@pytest.mark.slow
def test_interrupted_trials_resume_exactly_where_they_stopped(tmp_path):
    """Issue 16, defect 1: SIGTERM after epoch 1 (stops like Ctrl-C, exits 143), resume, SIGINT after epoch 2
    (exits 130), resume: every epoch runs once, and trials.csv, best.json, model.pt and study.db agree with an
    uninterrupted run of the same trial."""
    recipe = write_recipe(tmp_path, SLOW_EPOCHS)
    run, straight, log = tmp_path / "run", tmp_path / "straight", tmp_path / "tune.log"
    assert run_until_epoch(["tune", str(recipe), "--out", str(run)], run, 1, signal.SIGTERM, log) == 143
    text = log.read_text()
    assert "hpsearch resume" in text and "Traceback" not in text
    assert not (run / RAY_SESSION_FILE).exists()  # Ray was shut down on the way out
    assert reported_epochs(run) == [1]
    assert run_until_epoch(["resume", str(run)], run, 2) == 130
    assert reported_epochs(run) == [1, 2]
    assert run_until_epoch(["resume", str(run)], run, 0) == 0
    assert reported_epochs(run) == [1, 2, 3]  # exactly the remaining epochs, each once
    assert main(["tune", str(recipe), "--out", str(straight)]) == 0

    from hpsearch.rundir import RunDir

    for folder in (run, straight):
        opened = RunDir(folder)
        row = opened.trials.iloc[0]
        info = json.loads((folder / "trials" / row["trial_id"] / "best.json").read_text())
        study = optuna.load_study(study_name="interrupted", storage=f"sqlite:///{folder / 'study.db'}")
        assert row["status"] == "completed" and row["epochs"] == 3 and row["stop_reason"] == "max_epochs"
        assert info["epoch"] == row["best_epoch"] and info["val_acc"] == pytest.approx(row["val_acc"])
        assert study.trials[0].value == pytest.approx(row["val_acc"])
        val = opened.arrays("val")
        accuracy = (opened.predict(opened.best_model(), val).argmax(1) == val.labels).mean()
        assert accuracy == pytest.approx(row["val_acc"])  # model.pt is the model trials.csv describes
    interrupted, uninterrupted = RunDir(run).trials.iloc[0], RunDir(straight).trials.iloc[0]
    assert interrupted["val_acc"] == pytest.approx(uninterrupted["val_acc"])  # same seed, same result
    assert interrupted["val_loss"] == pytest.approx(uninterrupted["val_loss"], rel=1e-5)


STALE = '''
import ray
from hpsearch.search.session import ray_session

with ray_session(None):
    print("cpus", ray.cluster_resources()["CPU"])
'''


@pytest.mark.slow
def test_a_cluster_record_left_by_ray_start_is_not_joined():
    """`ray start` records its cluster in /tmp/ray/ray_current_cluster; a plain ray.init() joins whatever it names
    and waits forever when that cluster is gone. hpsearch starts its own local Ray unless given --address."""
    record = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    saved = record.read_bytes() if record.is_file() else None
    record.parent.mkdir(parents=True, exist_ok=True)
    try:
        record.write_text("127.0.0.1:1")  # a cluster that is not there any more
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        out = subprocess.run([sys.executable, "-c", STALE], env=env, capture_output=True, text=True, timeout=180)
        assert out.returncode == 0 and "cpus" in out.stdout, out.stderr[-2000:]
    finally:
        if saved is None:
            record.unlink(missing_ok=True)
        else:
            record.write_bytes(saved)
