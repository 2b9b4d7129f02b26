"""What ``tune`` does with a run directory: start a search, resume it, or extend it with more trials.

A run directory holds one or more Ray experiments (``ray``, then ``ray-2``, ... for each extension), listed
with their trial counts in ``config.json``. A directory that holds any search artifact is never reused
without ``--resume``; a resume may add trials or time, never change what the finished trials were trained on.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch.errors import HpsearchError
from hpsearch.io import read_json
from hpsearch.rundir import (
    CONFIG_FILE,
    EXPERIMENT_DIR,
    RECIPE_FILE,
    TRIALS_FILE,
    WORKERS_SUFFIX,
    from_elsewhere,
    holds_search,
    read_trials,
)
from hpsearch.search.export import CHECKPOINT_PREFIXES

if TYPE_CHECKING:
    from hpsearch.recipe import Recipe

log = logging.getLogger(__name__)
FIXED_ON_RESUME = ("name", "seed", "data", "train", "options", "warm_start", "defaults")
LATER_KEYS = ("warm_start", "defaults")  # lists that runs made before they existed do not record
# budget keys a resume may change; the others shape the finished trials
BUDGET_ON_RESUME = ("num_samples", "time_budget_s", "max_concurrent", "max_failures", "cpus_per_trial",
                    "gpus_per_trial", "workers_per_trial")


def experiment_location(run_dir: Path, storage: str | None, number: int = 1) -> tuple[str, str]:
    """(storage_path, experiment name) of the run's ``number``-th Ray experiment."""
    suffix = "" if number == 1 else f"-{number}"
    if storage is None:
        return str(run_dir.resolve()), EXPERIMENT_DIR + suffix
    local = "://" not in storage
    base = str(Path(storage).expanduser().resolve()) if local else storage.rstrip("/")
    return base, f"{run_dir.resolve().name}-{EXPERIMENT_DIR}{suffix}"


def workers_location(run_dir: Path, storage: str | None) -> str:
    """Where Ray Train keeps the checkpoints of multi-worker trials while they run (beside the first experiment:
    ``ray-workers/<trial id>``; each trial's folder is removed when it ends)."""
    base, name = experiment_location(run_dir, storage, 1)
    return f"{base}/{name}-{WORKERS_SUFFIX}"


def experiment_path(run_dir: Path, storage: str | None, number: int = 1) -> str:
    base, name = experiment_location(run_dir, storage, number)
    return f"{base}/{name}"


@dataclass
class SearchPlan:
    """Which experiment to restore (unfinished), which to start (with how many trials), and the full list."""

    experiments: list[dict[str, Any]] = field(default_factory=list)  # {"number", "num_samples"}
    restore: int | None = None
    start: int | None = None
    changes: dict[str, Any] = field(default_factory=dict)  # budget values this resume changed

    @property
    def idle(self) -> bool:
        """Nothing to run: every planned trial finished and no more were asked for."""
        return self.restore is None and self.start is None

    def paths(self, run_dir: Path, storage: str | None) -> list[str]:
        from ray import tune

        found = [experiment_path(run_dir, storage, e["number"]) for e in self.experiments]
        return [path for path in found if tune.Tuner.can_restore(path)]


def differences(stored: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(key, stored, current) for every leaf value that differs, keys written as in ``--set``."""
    found = []
    for key in sorted(set(stored) | set(current)):
        a, b = stored.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += differences(a, b, f"{prefix}{key}.")
        elif a != b and not (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and list(a) == list(b)):
            found.append((prefix + key, a, b))
    return found


def check_resume_changes(run_dir: Path, stored: dict[str, Any], recipe: Recipe) -> dict[str, Any]:
    """Refuse changes to data, model, training or the recipe itself; return the budget changes allowed."""
    stored_source = (run_dir / RECIPE_FILE).read_text() if (run_dir / RECIPE_FILE).is_file() else None
    if stored_source is not None and stored_source != recipe.source:
        raise HpsearchError(f"The recipe differs from the copy the search in {run_dir} started with "
                          f"({run_dir / RECIPE_FILE}); a resume must search the same space. Use "
                          f"`hpsearch resume {run_dir}`, or start a new run with --out.")
    current = recipe.resolved()
    for key, before, now in differences({k: stored.get(k, [] if k in LATER_KEYS else None) for k in FIXED_ON_RESUME},
                                        {k: current.get(k) for k in FIXED_ON_RESUME}):
        raise HpsearchError(f"On resume, {key} cannot change ({before!r} in {run_dir}, {now!r} now): the finished "
                          f"trials were trained with {before!r}. Drop that --set, or start a new run with --out.")
    changes = {}
    for key, before, now in differences(stored.get("budget", {}), current["budget"]):
        if key not in BUDGET_ON_RESUME:
            raise HpsearchError(f"On resume, budget.{key} cannot change ({before!r} -> {now!r}); only "
                              f"{', '.join(BUDGET_ON_RESUME)} can. Start a new run with --out to change it.")
        changes[key] = now
    return changes


def recorded_experiments(stored: dict[str, Any]) -> list[dict[str, Any]]:
    """The experiments ``config.json`` lists (runs made before the list existed had one: ``ray``)."""
    return list(stored.get("experiments") or [{"number": 1, "num_samples": stored["budget"]["num_samples"]}])


def plan_search(run_dir: Path, recipe: Recipe, resume: bool, storage: str | None) -> SearchPlan:
    """Decide what this ``tune`` (or ``resume``) runs, or explain in one line why it cannot."""
    from ray import tune

    existing = holds_search(run_dir)
    if not resume:
        if existing or tune.Tuner.can_restore(experiment_path(run_dir, storage)):
            raise HpsearchError(f"{str(run_dir)!r} already holds a search ({', '.join(existing) or 'ray/'}). Continue "
                              f"it with `hpsearch resume {run_dir}`, or choose a new --out folder.")
        return SearchPlan([{"number": 1, "num_samples": recipe.budget.num_samples}], start=1)
    if not (run_dir / CONFIG_FILE).is_file():
        raise HpsearchError(f"Nothing to resume in {str(run_dir)!r}: it holds no search ({CONFIG_FILE} is missing). "
                          f"Start the search without --resume.")
    stored = read_json(run_dir / CONFIG_FILE)
    plan = SearchPlan(recorded_experiments(stored), changes=check_resume_changes(run_dir, stored, recipe))
    alive = [e for e in plan.experiments if tune.Tuner.can_restore(experiment_path(run_dir, storage, e["number"]))]
    if alive and alive[-1] is plan.experiments[-1]:
        plan.restore = alive[-1]["number"]
    planned = sum(e["num_samples"] for e in alive) + finished_elsewhere(run_dir, alive, storage)
    if recipe.budget.num_samples > planned:
        number = max(e["number"] for e in plan.experiments) + 1
        plan.experiments.append({"number": number, "num_samples": recipe.budget.num_samples - planned,
                                 "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        plan.start = number
    if plan.idle and not (run_dir / TRIALS_FILE).is_file():
        raise HpsearchError(f"Nothing to resume in {run_dir}: Ray's experiment folder is gone and no trial finished "
                          f"(no {TRIALS_FILE}). Start the search again with a new --out.")
    return plan


def repair_missing_checkpoints(experiment: str) -> list[str]:
    """Give every unfinished trial whose latest checkpoint, as Ray's saved experiment state names it, no longer
    exists a copy of the newest checkpoint that survives in that folder, under the missing name; return the
    repaired paths.

    Ray saves its experiment state every few seconds, and a checkpoint can be pruned in between (PBT keeps a few
    per trial and hands a trial another trial's checkpoint): after a SIGKILL the state can name a deleted
    checkpoint, and Ray's restore fails on it. The trial then continues from its newest surviving state (the epoch
    counter, weights and history travel inside the checkpoint), losing nothing that was saved.
    """
    from ray.tune import ExperimentAnalysis

    if "://" in experiment:  # remote storage: Ray's restore reports a missing checkpoint itself
        return []
    repaired = []
    for trial in ExperimentAnalysis(experiment).trials:
        checkpoint = trial.checkpoint if trial.status not in ("TERMINATED", "ERROR") else None
        if checkpoint is None or Path(checkpoint.path).exists():
            continue
        missing = Path(checkpoint.path)
        survivors = [p for p in missing.parent.glob("*") if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIXES)]
        if not survivors:
            log.warning("Trial %s: its checkpoint %s is gone and no other survives; it starts again.",
                        trial.trial_id, missing)
            continue
        newest = max(survivors, key=lambda p: p.stat().st_mtime)
        shutil.copytree(newest, missing)
        log.warning("Trial %s: its checkpoint %s was pruned after Ray last saved its state; it continues from %s.",
                    trial.trial_id, missing.name, newest.name)
        repaired.append(str(missing))
    return repaired


def finished_elsewhere(run_dir: Path, alive: list[dict[str, Any]], storage: str | None) -> int:
    """Finished trials in trials.csv that no surviving experiment holds (its Ray folder was deleted); trials a
    warm start brought from earlier runs were never part of the budget."""
    if not (run_dir / TRIALS_FILE).is_file():
        return 0
    from ray.tune import ExperimentAnalysis

    paths = [experiment_path(run_dir, storage, e["number"]) for e in alive]
    known = {t.trial_id for path in paths for t in ExperimentAnalysis(path).trials}
    trials = read_trials(run_dir)
    finished = ~trials["trial_id"].isin(known) & trials["status"].isin(["completed", "failed"])
    return int((finished & ~from_elsewhere(trials)).sum())
