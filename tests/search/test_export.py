"""Why a trial ended, and which checkpoint it is exported from, as exported to trials.csv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hpsearch.io import read_json
from hpsearch.rundir import BEST_FILE, MODEL_FILE, save_model_folder
from hpsearch.search.budget import BudgetConfig
from hpsearch.search.export import (
    PBT_COPY_PREFIX,
    asha_rungs,
    copy_best_checkpoint,
    stop_reason,
    unregistered_checkpoints,
)
from hpsearch.training import BestState, TrialConfig
from tests.conftest import ROOT


@pytest.mark.parametrize(("max_epochs", "grace", "factor", "rungs"), [
    (20, 4, 3, {4, 12}), (3, 1, 3, {1, 3}), (9, 1, 3, {1, 3, 9}), (10, 2, 3, {2, 6}), (2, 4, 3, set()),
])
def test_asha_rungs_match_rays_milestones(max_epochs, grace, factor, rungs):
    budget = BudgetConfig(max_epochs=max_epochs, grace_period=grace, reduction_factor=factor)
    assert asha_rungs(budget) == rungs


def test_stop_reasons():
    asha = BudgetConfig(max_epochs=20, grace_period=4, reduction_factor=3, time_budget_s=60)
    assert stop_reason("completed", {"epoch": 4}, asha) == "asha"
    assert stop_reason("completed", {"epoch": 12}, asha) == "asha"
    assert stop_reason("completed", {"epoch": 7}, asha) == "time_budget"  # between rungs: ASHA never stops there
    assert stop_reason("completed", {"epoch": 20}, asha) == "max_epochs"
    assert stop_reason("completed", {"epoch": 3, "stopped_by_patience": True}, asha) == "patience"
    assert stop_reason("failed", {"epoch": 3}, asha) == "error"
    assert stop_reason("incomplete", {"epoch": 3}, asha) == "interrupted"
    fifo = BudgetConfig(max_epochs=20, grace_period=4, scheduler="fifo", time_budget_s=60)
    assert stop_reason("completed", {"epoch": 4}, fifo) == "time_budget"  # no scheduler stops trials
    still = BudgetConfig(max_epochs=20, grace_period=4, scheduler="fifo")
    assert stop_reason("completed", {"epoch": 4}, still) == "stopped"  # never "time_budget" without one


def test_stop_reasons_of_the_other_schedulers_and_of_deployment_bounds():
    for name in ("hyperband", "median"):
        budget = BudgetConfig(max_epochs=20, grace_period=4, scheduler=name)
        assert stop_reason("completed", {"epoch": 5}, budget) == name
        assert stop_reason("completed", {"epoch": 20}, budget) == "max_epochs"
    bounded = BudgetConfig(max_epochs=20, max_ms_per_image=1.0)
    assert stop_reason("completed", {"epoch": 1, "infeasible": True}, bounded) == "infeasible"


def test_feasibility_follows_every_bound():
    budget = BudgetConfig(max_ms_per_image=2.0, max_params=1e6)
    assert budget.limits == {"ms_per_image": 2.0, "parameters": 1e6}
    assert budget.within_limits({"ms_per_image": 1.5, "parameters": 5e5}) is True
    assert budget.within_limits({"ms_per_image": 2.5, "parameters": 5e5}) is False
    assert budget.within_limits({"ms_per_image": 1.5, "parameters": 2e6}) is False
    assert budget.within_limits({"ms_per_image": None, "parameters": 5e5}) is None  # not measured
    assert BudgetConfig().limits == {}


# --- which checkpoint a trial is exported from ------------------------------------------------------------------
def model_folder(folder: Path, epoch: int) -> Path:
    best = BestState(epoch, 0.1 * epoch, 1.0, 0.5, 1.0, {"w": torch.full((2,), float(epoch))},
                     np.full((3, 2), 0.5, dtype=np.float32))
    return save_model_folder(folder, best, TrialConfig(), 0, (0.5,), (0.5,))


def fake_trial(folder: Path, registered: str | None) -> SimpleNamespace:
    """What the export reads of a Ray trial: its registered checkpoint and where its folder is."""
    from pyarrow import fs as pafs
    from ray.tune import Checkpoint

    checkpoint = Checkpoint(str(folder / registered)) if registered else None
    storage = SimpleNamespace(storage_filesystem=pafs.LocalFileSystem(), trial_fs_path=str(folder))
    return SimpleNamespace(trial_id="t1", checkpoint=checkpoint, storage=storage)


def exported_epoch(target: Path) -> int:
    return read_json(target / BEST_FILE)["epoch"]


def test_the_newest_whole_unregistered_checkpoint_the_history_holds_is_exported(tmp_path):
    trial_dir = tmp_path / "ray" / "trial"
    for index, epoch in ((1, 2), (2, 3), (3, 4), (4, 5)):
        model_folder(trial_dir / f"checkpoint_{index:06d}", epoch)
    (trial_dir / "checkpoint_000000").mkdir()  # pruned by Ray long ago: numbered before the registered one
    cut = trial_dir / "checkpoint_000003" / MODEL_FILE  # written as the run stopped: cut off
    cut.write_bytes(cut.read_bytes()[:40])
    trial = fake_trial(trial_dir, "checkpoint_000001")
    names = [Path(c.path).name for c in unregistered_checkpoints(trial)]
    assert names == ["checkpoint_000004", "checkpoint_000003", "checkpoint_000002"]
    # the history ends at epoch 4: checkpoint 4 (epoch 5) is past it, checkpoint 3 is cut off
    assert copy_best_checkpoint(trial, tmp_path / "out", last_epoch=4) and exported_epoch(tmp_path / "out") == 3
    assert copy_best_checkpoint(trial, tmp_path / "grid") and exported_epoch(tmp_path / "grid") == 2  # no history


def test_a_trial_with_no_registered_checkpoint_is_exported_from_the_one_it_wrote(tmp_path):
    trial_dir = tmp_path / "trial"
    model_folder(trial_dir / "checkpoint_000000", 1)
    trial = fake_trial(trial_dir, None)
    assert copy_best_checkpoint(trial, tmp_path / "out", last_epoch=1) and exported_epoch(tmp_path / "out") == 1
    assert not copy_best_checkpoint(trial, tmp_path / "none", last_epoch=0)  # its result never reached the driver
    assert not (tmp_path / "none").exists()


def test_a_pbt_copy_as_the_registered_checkpoint_stays_the_export(tmp_path):
    trial_dir = tmp_path / "trial"
    model_folder(trial_dir / f"{PBT_COPY_PREFIX}00001", 3)
    model_folder(trial_dir / "checkpoint_000002", 2)  # the trial's own, from before the exploit
    trial = fake_trial(trial_dir, f"{PBT_COPY_PREFIX}00001")
    assert unregistered_checkpoints(trial) == []
    assert copy_best_checkpoint(trial, tmp_path / "out", last_epoch=3) and exported_epoch(tmp_path / "out") == 3


RACE = '''
import json, sys, tempfile
from pathlib import Path

import numpy as np, ray, torch
from ray import tune
from ray.tune import ExperimentAnalysis
from ray.tune.stopper import Stopper

from hpsearch.search.export import copy_best_checkpoint
from hpsearch.rundir import save_model_folder
from hpsearch.training import BestState, TrialConfig


def trainable(config):
    for epoch in (1, 2, 3):
        best = BestState(epoch, 0.1 * epoch, 1.0, 0.5, 1.0, {"w": torch.zeros(2)}, np.zeros((3, 2), np.float32))
        with tempfile.TemporaryDirectory() as tmp:
            save_model_folder(Path(tmp), best, TrialConfig(), 0, (0.5,), (0.5,))
            tune.report({"epoch": epoch}, checkpoint=tune.Checkpoint.from_directory(tmp))


class StopAtTheFirstResult(Stopper):  # a time budget that runs out as the first result arrives
    def __init__(self):
        self.seen = False

    def __call__(self, trial_id, result):
        self.seen = True
        return False

    def stop_all(self):
        return self.seen


out = Path(sys.argv[1])
ray.init(address="local", num_cpus=1, include_dashboard=False)
tune.Tuner(trainable, run_config=tune.RunConfig(name="exp", storage_path=str(out), stop=StopAtTheFirstResult(),
                                                verbose=0)).fit()
ray.shutdown()
trial = ExperimentAnalysis(str(out / "exp")).trials[0]
copied = copy_best_checkpoint(trial, out / "model", last_epoch=1)
print(json.dumps({"registered": trial.checkpoint is not None, "copied": copied,
                  "folders": sorted(p.name for p in Path(trial.path).glob("checkpoint_*")),
                  "epoch": json.loads((out / "model" / "best.json").read_text())["epoch"] if copied else None}))
'''


@pytest.mark.slow
def test_a_checkpoint_the_run_ended_before_ray_registered_is_exported(tmp_path):
    """Ray writes a function trainable's checkpoint as it reports but registers it after the result; a time
    budget that runs out between the two leaves the trial with a history and no registered checkpoint (CI once
    exported such a trial without a model)."""
    script = tmp_path / "race.py"
    script.write_text(RACE)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "out")], capture_output=True, text=True,
                          env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["copied"] and found["epoch"] == 1
    if found["registered"]:  # Ray 2.60 leaves it unregistered every time; a later Ray may close the window
        pytest.skip("this Ray registered the checkpoint before the run stopped: the race does not occur")
    assert "checkpoint_000000" in found["folders"]
