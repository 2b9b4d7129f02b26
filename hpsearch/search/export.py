"""Turn a Ray Tune experiment folder into ``trials.csv``, ``history.csv`` and ``trials/<id>/``."""

from __future__ import annotations

import logging
import math
import re
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import optuna
import pandas as pd

from hpsearch.errors import HpsearchError
from hpsearch.io import read_json
from hpsearch.rundir import (
    BEST_FILE,
    COST_COLUMNS,
    HISTORY_COLUMNS,
    HISTORY_FILE,
    ORIGIN_DEFAULT,
    ORIGIN_SEARCH,
    TRIAL_COLUMNS,
    TRIAL_KEY_COLUMNS,
    TRIAL_RESULT_COLUMNS,
    TRIALS_DIR,
    TRIALS_FILE,
    copy_model_folder,
    parameter_columns,
    rank_trials,
    read_history,
    read_model_folder,
    read_trials,
    write_table,
)
from hpsearch.search.budget import BudgetConfig
from hpsearch.search.space import TRIAL_NUMBER_KEY

STATUS = {"TERMINATED": "completed", "ERROR": "failed"}
log = logging.getLogger(__name__)


def parameter_names(study: optuna.Study, configs: list[dict[str, Any]]) -> list[str]:
    """Every parameter the study sampled, then every other config value that differs between trials."""
    names: dict[str, None] = {}
    for trial in study.get_trials(deepcopy=False):
        names.update(dict.fromkeys(trial.params))
    for key in dict.fromkeys(k for config in configs for k in config):
        if key not in names and key not in (*TRIAL_COLUMNS, "seed"):
            if len({repr(config.get(key)) for config in configs}) > 1:
                names[key] = None
    return list(names)


def asha_rungs(budget: BudgetConfig) -> set[int]:
    """The epochs at which Ray's ASHA compares trials (grace_period * reduction_factor**k up to max_epochs)."""
    ratio = budget.max_epochs / budget.grace_epochs
    count = int(math.log(ratio) / math.log(budget.reduction_factor) + 1 + 1e-9) if ratio >= 1 else 0
    return {budget.grace_epochs * budget.reduction_factor ** k for k in range(count)}


def stop_reason(status: str, last: dict[str, Any], budget: BudgetConfig) -> str:
    """Why a trial ended: error, interrupted, patience, infeasible (its measured cost exceeds a deployment bound),
    max_epochs, asha (stopped at one of its rungs), hyperband or median (stopped by that scheduler), or
    time_budget (the search's time_budget_s ran out while the trial was between ASHA rungs)."""
    if status == "failed":
        return "error"
    if status != "completed":
        return "interrupted"
    if last.get("stopped_by_patience"):
        return "patience"
    if last.get("infeasible"):
        return "infeasible"
    epoch = last.get("epoch", 0)
    if epoch >= budget.max_epochs:
        return "max_epochs"
    if budget.scheduler == "asha" and epoch in asha_rungs(budget):
        return "asha"
    if budget.scheduler in ("hyperband", "median"):
        return budget.scheduler
    return "time_budget" if budget.time_budget_s is not None else "stopped"


EARLY_REASONS = ("asha", "hyperband", "median", "patience", "infeasible")


def error_text(trial) -> str:
    """The last line of the trial's error file (the exception and its message), read from Ray's storage."""
    name = trial.run_metadata.error_filename
    if not name:
        return ""
    storage = trial.storage
    try:
        with storage.storage_filesystem.open_input_stream(f"{storage.trial_fs_path}/{name}") as stream:
            text = stream.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


def trial_row(trial, history: pd.DataFrame, names: list[str], budget: BudgetConfig, origin: str) -> dict[str, Any]:
    status = STATUS.get(trial.status, "incomplete")
    last = trial.last_result or {}
    row = {"trial_id": trial.trial_id, "optuna_trial": trial.config.get(TRIAL_NUMBER_KEY), "status": status}
    row.update({name: trial.config.get(name) for name in names})
    epochs = int(history["epoch"].max()) if len(history) else 0
    reason = stop_reason(status, last, budget)
    row.update({"epochs": epochs, "stopped_early": reason in EARLY_REASONS, "stop_reason": reason,
                "best_epoch": None, "val_acc": None, "val_loss": None, "train_acc": None, "wall_s": None})
    if len(history):
        best = rank_trials(history).iloc[0]
        row.update({"best_epoch": int(best["epoch"]), "val_acc": float(best["val_acc"]),
                    "val_loss": float(best["val_loss"]), "train_acc": float(best["train_acc"]),
                    "wall_s": float(history["time_total_s"].max())})
        if "node_id" in history:
            row["node_id"] = str(history["node_id"].iloc[-1])
    costs = {key: last.get(key) for key in COST_COLUMNS}
    row.update(costs)
    row["feasible"] = budget.within_limits(costs) if budget.limits else True
    row["origin"] = origin
    row["error"] = error_text(trial) if status == "failed" else ""
    return row


def best_from_folder(folder: Path) -> dict[str, Any]:
    """The best epoch the trial's saved model is (what ``best.json`` says), for its row of trials.csv; the same
    as the best of its history, except after PBT handed it another trial's checkpoint."""
    info = read_json(folder / BEST_FILE)
    return {"best_epoch": int(info["epoch"]), "val_acc": float(info["val_acc"]), "val_loss": float(info["val_loss"]),
            "train_acc": float(info["train_acc"])}


def origins(study: optuna.Study) -> dict[int, str]:
    """Optuna trial number -> origin, for trials that the recipe's ``defaults`` enqueued."""
    return {t.number: ORIGIN_DEFAULT for t in study.get_trials(deepcopy=False) if "fixed_params" in t.system_attrs}


def trial_history(analysis, trial) -> pd.DataFrame:
    frame = analysis.trial_dataframes.get(trial.trial_id)
    if frame is None or frame.empty or "epoch" not in frame:
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    frame = frame.copy()
    frame["trial_id"], frame["optuna_trial"] = trial.trial_id, trial.config.get(TRIAL_NUMBER_KEY)
    frame = frame.drop_duplicates("epoch", keep="last").sort_values("epoch")
    return frame[[c for c in HISTORY_COLUMNS if c in frame]]


RAY_CHECKPOINT_PREFIX = "checkpoint_"  # Ray's checkpoint folders in a trial's folder: checkpoint_000003
PBT_COPY_PREFIX = "exploited-"  # hpsearch's PBT keeps its private copy of a donor's checkpoint as exploited-00002
CHECKPOINT_PREFIXES = (RAY_CHECKPOINT_PREFIX, PBT_COPY_PREFIX)
RAY_CHECKPOINT_NAME = re.compile(rf"^{RAY_CHECKPOINT_PREFIX}(\d+)$")


def unregistered_checkpoints(trial) -> list:
    """Checkpoints in the trial's folder numbered after the one Ray registered, newest first.

    A function trainable's checkpoint is written to the trial's folder as it reports; the driver registers it in a
    second step, after the result. A stop of the whole run between the two (the time budget, Ctrl-C) leaves the
    trial's newest checkpoint on disk but unregistered. A PBT copy as the registered checkpoint leaves none: its
    numbering says nothing about its order against Ray's.
    """
    from pyarrow import fs as pafs
    from ray.tune import Checkpoint

    registered = trial.checkpoint
    after = -1
    if registered is not None:
        match = RAY_CHECKPOINT_NAME.match(PurePosixPath(registered.path).name)
        if match is None:
            return []
        after = int(match[1])
    storage = trial.storage
    filesystem = storage.storage_filesystem
    try:
        entries = filesystem.get_file_info(pafs.FileSelector(storage.trial_fs_path, allow_not_found=True))
    except OSError:
        return []
    found = []
    for entry in entries:
        match = RAY_CHECKPOINT_NAME.match(entry.base_name)
        if entry.type == pafs.FileType.Directory and match and int(match[1]) > after:
            found.append((int(match[1]), entry.path))
    return [Checkpoint(path, filesystem=filesystem) for _, path in sorted(found, reverse=True)]


def readable_model(folder: Path, last_epoch: int | None) -> bool:
    """``folder`` holds a whole model folder (not one cut off as it was written) of an epoch no later than
    ``last_epoch`` (a checkpoint of an epoch whose result never reached the driver may be past the history)."""
    try:
        best, _ = read_model_folder(folder)
    except (HpsearchError, OSError, ValueError, KeyError, TypeError, EOFError):
        return False
    return last_epoch is None or best.epoch <= last_epoch


def copy_best_checkpoint(trial, target: Path, last_epoch: int | None = None) -> bool:
    """Copy the best epoch's model folder out of the trial's latest checkpoint into ``target``.

    Given the last epoch of the trial's history, the newest whole checkpoint Ray wrote but did not register (see
    ``unregistered_checkpoints``) whose model is of an epoch the history holds comes first; otherwise the
    registered checkpoint. ``Checkpoint.to_directory`` fetches it from wherever Ray's storage is (a shared folder
    or a URI).
    """
    candidates = [(c, False) for c in unregistered_checkpoints(trial)] if last_epoch is not None else []
    if trial.checkpoint is not None:
        candidates.append((trial.checkpoint, True))
    scratch = target.parent if target.parent.is_dir() else None
    for checkpoint, registered in candidates:
        with tempfile.TemporaryDirectory(prefix=".checkpoint-", dir=scratch) as tmp:
            source = Path(checkpoint.to_directory(tmp))
            if not (source / BEST_FILE).is_file() or not (registered or readable_model(source, last_epoch)):
                continue
            if not registered:
                log.info("Trial %s: exported from %s, which the run wrote but Ray had not registered when it "
                         "stopped.", trial.trial_id, PurePosixPath(checkpoint.path).name)
            saved = target / BEST_FILE
            if not (saved.is_file() and saved.read_bytes() == (source / BEST_FILE).read_bytes()):
                copy_model_folder(source, target)
            return True
    return False


def earlier_rows(run_dir: Path, exported: set[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Finished trials already in ``trials.csv`` that no Ray experiment at hand knows (its folder was deleted,
    or the trial came from elsewhere), with their history: kept as they are, never dropped."""
    if not (run_dir / TRIALS_FILE).is_file():
        return pd.DataFrame(), pd.DataFrame(columns=HISTORY_COLUMNS)
    earlier = read_trials(run_dir)
    earlier = earlier[~earlier["trial_id"].isin(exported) & earlier["status"].isin(["completed", "failed"])]
    history = read_history(run_dir, missing_ok=True)
    if history is None or earlier.empty:
        return earlier, pd.DataFrame(columns=HISTORY_COLUMNS)
    return earlier, history[history["trial_id"].isin(set(earlier["trial_id"]))]


def export_experiments(run_dir: Path, experiments: list[str], study: optuna.Study,
                       budget: BudgetConfig) -> pd.DataFrame:
    """Write ``trials.csv``, ``history.csv`` and the per-trial folders from every Ray experiment of the run
    (and the earlier rows of trials no experiment holds any more); return the trials table."""
    from ray.tune import ExperimentAnalysis

    analyses = [ExperimentAnalysis(e) for e in experiments]
    (run_dir / TRIALS_DIR).mkdir(parents=True, exist_ok=True)
    every = [(analysis, trial) for analysis in analyses for trial in analysis.trials]
    names = parameter_names(study, [trial.config for _, trial in every])
    rows, histories = [], []
    enqueued = origins(study)
    for analysis, trial in every:
        history = trial_history(analysis, trial)
        histories.append(history)
        row = trial_row(trial, history, names, budget, enqueued.get(trial.config.get(TRIAL_NUMBER_KEY), ORIGIN_SEARCH))
        folder = run_dir / TRIALS_DIR / trial.trial_id
        row["checkpoint"] = copy_best_checkpoint(trial, folder, last_epoch=row["epochs"])  # its history's last epoch
        if row["checkpoint"]:
            row.update(best_from_folder(folder))
        rows.append(row)
    earlier, earlier_history = earlier_rows(run_dir, {str(row["trial_id"]) for row in rows})
    trials = pd.concat([pd.DataFrame(rows), earlier], ignore_index=True)
    names += [c for c in parameter_columns(earlier) if c not in names]
    trials = trials[[*TRIAL_KEY_COLUMNS, *names, *[c for c in TRIAL_RESULT_COLUMNS if c in trials]]]
    trials = trials.sort_values(["optuna_trial", "trial_id"], na_position="last").reset_index(drop=True)
    parts = [h for h in [*histories, earlier_history] if len(h)]
    history = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=HISTORY_COLUMNS)
    write_table(run_dir / TRIALS_FILE, trials)
    write_table(run_dir / HISTORY_FILE, history)
    return trials
