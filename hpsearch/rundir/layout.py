"""The run directory's names and table schemas, its ranking rules, and reading and writing its tables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from hpsearch.data.split import SPLIT_FILE
from hpsearch.errors import HpsearchError
from hpsearch.io import atomic_write

RECIPE_FILE, CONFIG_FILE, ENV_FILE = "recipe.py", "config.json", "env.json"  # and SPLIT_FILE, from hpsearch.data
STUDY_FILE, EXPERIMENT_DIR, SUMMARY_FILE = "study.db", "ray", "summary.json"
WORKERS_SUFFIX = "workers"  # ray-workers/: Ray Train's checkpoints of running multi-worker trials
TRIALS_FILE, HISTORY_FILE, TRIALS_DIR = "trials.csv", "history.csv", "trials"
MODEL_FILE, PROBS_FILE, BEST_FILE = "model.pt", "val_probs.npy", "best.json"  # one trained model's folder
MODEL_FOLDER_FILES = (MODEL_FILE, PROBS_FILE, BEST_FILE)
ENSEMBLES_DIR, ENSEMBLES_FILE, OOF_DIR = "ensembles", "ensembles.csv", "oof"  # oof: ensembles/oof/<model>.npy
TEST_METRICS_FILE, EVALUATION_DIR, SWEEPS_DIR, REPORT_DIR = "test_metrics.csv", "evaluation", "sweeps", "report"
REFIT_DIR = "refit"  # refit/<trial_id>/: a trial's configuration retrained on training + validation images
SEARCH_ARTIFACTS = (TRIALS_FILE, STUDY_FILE, SPLIT_FILE, TRIALS_DIR)  # a folder holding any of these is a run

# --- table schemas: the non-parameter columns of each table, in order --------------------------------------------
TRIAL_KEY_COLUMNS = ["trial_id", "optuna_trial", "status"]  # then the parameters, then the results
COST_COLUMNS = ["parameters", "ms_per_image", "ms_per_image_b32"]  # measured in each trial (batch 1 and 32)
TRIAL_RESULT_COLUMNS = ["epochs", "stopped_early", "stop_reason", "best_epoch", "val_acc", "val_loss", "train_acc",
                        "wall_s", *COST_COLUMNS, "feasible", "origin", "node_id", "error", "checkpoint"]
# where a row of trials.csv comes from: this search's sampler, the recipe's `defaults`, or (with the source run's
# folder after a colon) an earlier run added by --warm-start, which was not trained again here
ORIGIN_SEARCH, ORIGIN_DEFAULT, ORIGIN_WARM_START = "search", "default", "warm_start"
TRIAL_COLUMNS = TRIAL_KEY_COLUMNS + TRIAL_RESULT_COLUMNS
HISTORY_COLUMNS = ["trial_id", "optuna_trial", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
                   "best_val_acc", "epoch_seconds", "time_total_s", "timestamp", "node_id"]
ENSEMBLE_COLUMNS = ["model", "method", "tta", "members", "relative_cost", "val_accuracy", "val_log_loss",
                    "val_accuracy_oof", "val_log_loss_oof", "temperature", "oof_gain_vs_best_single",
                    "oof_gain_ci_low", "oof_gain_ci_high", "variant_chosen", "chosen"]
TEST_SUMMARY_COLUMNS = ["model", "members", "tta", "accuracy", "accuracy_ci_low", "accuracy_ci_high",
                        "balanced_accuracy", "f1_macro", "roc_auc_ovr_macro", "log_loss", "log_loss_calibrated", "ece",
                        "ece_calibrated", "mcnemar_p_vs_best_single", "parameters", "ms_per_image", "val_accuracy_oof",
                        "chosen_by_validation", "refit", "ships"]
BEST_SINGLE = "best_single"  # the best trial's name in ensembles.csv and test_metrics.csv
TTA_SUFFIX = "+tta"  # a model's name with test-time augmentation
REFIT_SUFFIX = "+refit"  # a model's name with its trials retrained on training + validation images
# columns that name things, read as strings in every table (whatever their values look like)
IDENTIFIER_DTYPES: dict[str, type] = {"trial_id": str, "model": str, "method": str}
# required column -> kind ("str", "num", "bool") checked whenever a table is read back
_SCHEMAS: dict[str, dict[str, str]] = {
    TRIALS_FILE: {"trial_id": "str", "status": "str", "val_acc": "num", "val_loss": "num"},
    HISTORY_FILE: {"trial_id": "str", "epoch": "num", "val_acc": "num", "val_loss": "num", "train_acc": "num"},
    ENSEMBLES_FILE: {"model": "str", "val_accuracy": "num", "val_accuracy_oof": "num"},
    TEST_METRICS_FILE: {"model": "str", "accuracy": "num"},
}


def rank_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The ranking rule: feasible trials first (those within the budget's deployment bounds; every trial is
    feasible without bounds), then the highest validation accuracy, then the lower validation loss."""
    ranked = trials.assign(_infeasible=~feasible(trials))
    ranked = ranked.sort_values(["_infeasible", "val_acc", "val_loss"], ascending=[True, False, True],
                                na_position="last", kind="stable")
    return ranked.drop(columns="_infeasible")


def feasible(trials: pd.DataFrame) -> pd.Series:
    """Whether each trial met the deployment bounds (a missing ``feasible`` value counts as feasible)."""
    if "feasible" not in trials:
        return pd.Series(True, index=trials.index)
    return ~trials["feasible"].astype(str).str.lower().isin(["false", "0", "0.0"])


def from_elsewhere(trials: pd.DataFrame) -> pd.Series:
    """Rows of trials.csv that came from an earlier run (``--warm-start``): never trained in this run."""
    if "origin" not in trials:
        return pd.Series(False, index=trials.index)
    return trials["origin"].fillna("").astype(str).str.startswith(ORIGIN_WARM_START)


def rank_models(models: pd.DataFrame) -> pd.DataFrame:
    """The selection rule among models (ensembles.csv rows): out-of-fold validation accuracy first, its
    log-loss breaks ties, then the cheaper model. In-sample validation scores never choose: methods fit on
    validation would win them."""
    keys = [k for k in ("val_accuracy_oof", "val_log_loss_oof", "relative_cost") if k in models]
    return models.sort_values(keys, ascending=[False, True, True][:len(keys)], na_position="last", kind="stable")


def parameter_columns(trials: pd.DataFrame) -> list[str]:
    """The columns of ``trials.csv`` that hold sampled (or varying) parameters."""
    return [c for c in trials.columns if c not in TRIAL_COLUMNS]


def study_url(run_dir: Path | str) -> str:
    """The SQLAlchemy URL of the run's Optuna study (also what ``optuna-dashboard`` takes)."""
    return f"sqlite:///{(Path(run_dir) / STUDY_FILE).resolve()}"


def read_table(path: Path, dtypes: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Read a run-directory CSV: only empty cells are missing (a class called ``NA`` stays ``NA``), identifiers stay
    strings (a trial id such as ``6172e946`` is not the float 6172e946), and the required columns of known tables are
    checked, so a damaged file is a one-line error, never a wrong result."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 1))
            ends_with_newline = f.read(1) in (b"\n", b"")
        table = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={**IDENTIFIER_DTYPES, **(dtypes or {})})
    except FileNotFoundError:
        raise HpsearchError(f"{str(path)!r} is missing.") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, UnicodeDecodeError) as err:
        raise damaged(path, str(err).splitlines()[0]) from None
    if not ends_with_newline:
        raise damaged(path, "its last row is cut short")
    for column, kind in _SCHEMAS.get(path.name, {}).items():
        if column not in table:
            raise damaged(path, f"column {column!r} is missing")
        values = table[column].dropna()
        if kind == "num" and not pd.api.types.is_numeric_dtype(values):
            bad = values[pd.to_numeric(values, errors="coerce").isna()]
            raise damaged(path, f"column {column!r} holds {bad.iloc[0]!r} where a number belongs")
    if path.name == TRIALS_FILE:
        check_trials_complete(table, path)
    return table


TRIAL_STATUSES = ("completed", "failed", "incomplete")


def check_trials_complete(trials: pd.DataFrame, path: Path) -> None:
    """Every status is known, and a completed trial with a checkpoint has its accuracy and loss."""
    unknown = trials[~trials["status"].isin(TRIAL_STATUSES)]
    if len(unknown):
        raise damaged(path, f"trial {unknown.iloc[0]['trial_id']} has status {unknown.iloc[0]['status']!r}")
    if "checkpoint" in trials:
        flags = trials["checkpoint"].astype(str).str.lower()
        odd = trials["checkpoint"][~flags.isin(["true", "false"])]
        if len(odd):
            raise damaged(path, f"column 'checkpoint' holds {odd.iloc[0]!r}")
        done = trials[(trials["status"] == "completed") & (flags == "true")]
        broken = done[done["val_acc"].isna() | done["val_loss"].isna()]
        if len(broken):
            raise damaged(path, f"trial {broken.iloc[0]['trial_id']} is completed but has no val_acc/val_loss")


def damaged(path: Path, why: str) -> HpsearchError:
    return HpsearchError(f"{str(path)!r} is damaged ({why}). Restore it from a backup, or re-create it: "
                         f"`hpsearch resume` rewrites trials.csv and history.csv from Ray's records.")


def write_table(path: Path, table: pd.DataFrame) -> Path:
    return atomic_write(path, table.to_csv(index=False))


# --- one trained model's folder ------------------------------------------------------------------------------------
