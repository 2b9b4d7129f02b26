"""The run directory's contract: every file name, table schema and ranking rule, and how each artifact is
read and written. Every stage talks to the others through this module only; it imports neither Ray nor Optuna.
"""

from __future__ import annotations

import os
import pickle
import shutil
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from hpsearch.config import build_section
from hpsearch.data import DataConfig, ImageArrays, TrialData, load_split, load_subset
from hpsearch.data.dataset import TestSplitKey
from hpsearch.data.split import SPLIT_FILE
from hpsearch.errors import HpsearchError
from hpsearch.io import atomic_save, atomic_write, read_json, write_json
from hpsearch.models import create_model
from hpsearch.training import BestState, Normalizer, TrialConfig, predict_proba, preserved_global_rng

# --- file and folder names -------------------------------------------------------------------------------------
RECIPE_FILE, CONFIG_FILE, ENV_FILE = "recipe.py", "config.json", "env.json"  # and SPLIT_FILE, from hpsearch.data
STUDY_FILE, EXPERIMENT_DIR, SUMMARY_FILE = "study.db", "ray", "summary.json"
TRIALS_FILE, HISTORY_FILE, TRIALS_DIR = "trials.csv", "history.csv", "trials"
MODEL_FILE, PROBS_FILE, BEST_FILE = "model.pt", "val_probs.npy", "best.json"  # one trained model's folder
MODEL_FOLDER_FILES = (MODEL_FILE, PROBS_FILE, BEST_FILE)
ENSEMBLES_DIR, ENSEMBLES_FILE, OOF_DIR = "ensembles", "ensembles.csv", "oof"  # oof: ensembles/oof/<model>.npy
TEST_METRICS_FILE, EVALUATION_DIR, SWEEPS_DIR, REPORT_DIR = "test_metrics.csv", "evaluation", "sweeps", "report"
SEARCH_ARTIFACTS = (TRIALS_FILE, STUDY_FILE, SPLIT_FILE, TRIALS_DIR)  # a folder holding any of these is a run

# --- table schemas: the non-parameter columns of each table, in order --------------------------------------------
TRIAL_KEY_COLUMNS = ["trial_id", "optuna_trial", "status"]  # then the parameters, then the results
TRIAL_RESULT_COLUMNS = ["epochs", "stopped_early", "stop_reason", "best_epoch", "val_acc", "val_loss", "train_acc",
                        "wall_s", "node_id", "error", "checkpoint"]
TRIAL_COLUMNS = TRIAL_KEY_COLUMNS + TRIAL_RESULT_COLUMNS
HISTORY_COLUMNS = ["trial_id", "optuna_trial", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
                   "best_val_acc", "epoch_seconds", "time_total_s", "timestamp", "node_id"]
ENSEMBLE_COLUMNS = ["model", "method", "tta", "members", "relative_cost", "val_accuracy", "val_log_loss",
                    "val_accuracy_oof", "val_log_loss_oof", "temperature", "oof_gain_vs_best_single",
                    "oof_gain_ci_low", "oof_gain_ci_high", "variant_chosen", "chosen"]
TEST_SUMMARY_COLUMNS = ["model", "members", "tta", "accuracy", "accuracy_ci_low", "accuracy_ci_high",
                        "balanced_accuracy", "f1_macro", "roc_auc_ovr_macro", "log_loss", "log_loss_calibrated", "ece",
                        "ece_calibrated", "mcnemar_p_vs_best_single", "parameters", "ms_per_image", "val_accuracy_oof",
                        "chosen_by_validation"]
BEST_SINGLE = "best_single"  # the best trial's name in ensembles.csv and test_metrics.csv
TTA_SUFFIX = "+tta"  # a model's name with test-time augmentation
# required column -> kind ("str", "num", "bool") checked whenever a table is read back
_SCHEMAS: dict[str, dict[str, str]] = {
    TRIALS_FILE: {"trial_id": "str", "status": "str", "val_acc": "num", "val_loss": "num"},
    HISTORY_FILE: {"trial_id": "str", "epoch": "num", "val_acc": "num", "val_loss": "num", "train_acc": "num"},
    ENSEMBLES_FILE: {"model": "str", "val_accuracy": "num", "val_accuracy_oof": "num"},
    TEST_METRICS_FILE: {"model": "str", "accuracy": "num"},
}


def rank_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The ranking rule: highest validation accuracy first, lower validation loss breaks ties."""
    return trials.sort_values(["val_acc", "val_loss"], ascending=[False, True], na_position="last")


def rank_models(models: pd.DataFrame) -> pd.DataFrame:
    """The selection rule among models (ensembles.csv rows): out-of-fold validation accuracy first, its
    log-loss breaks ties. In-sample validation scores never choose: methods fit on validation would win them."""
    return models.sort_values(["val_accuracy_oof", "val_log_loss_oof"], ascending=[False, True], na_position="last")


def parameter_columns(trials: pd.DataFrame) -> list[str]:
    """The columns of ``trials.csv`` that hold sampled (or varying) parameters."""
    return [c for c in trials.columns if c not in TRIAL_COLUMNS]


def study_url(run_dir: Path | str) -> str:
    """The SQLAlchemy URL of the run's Optuna study (also what ``optuna-dashboard`` takes)."""
    return f"sqlite:///{(Path(run_dir) / STUDY_FILE).resolve()}"


def read_table(path: Path, dtypes: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Read a run-directory CSV: only empty cells are missing (a class called ``NA`` stays ``NA``), and the
    required columns of known tables are checked, so a damaged file is a one-line error, never a wrong result."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 1))
            ends_with_newline = f.read(1) in (b"\n", b"")
        table = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=dict(dtypes or {}))
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
def save_model_folder(folder: Path, best: BestState, config: TrialConfig, optuna_trial: int | None,
                      mean: tuple[float, ...], std: tuple[float, ...], **extra: Any) -> Path:
    """Write the best epoch's weights, validation probabilities, metrics and normalization into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_save(folder / MODEL_FILE, lambda f: torch.save(best.state_dict, f))
    atomic_save(folder / PROBS_FILE, lambda f: np.save(f, best.val_probs.astype(np.float32)))
    write_json(folder / BEST_FILE, {
        "epoch": best.epoch, "val_acc": best.val_acc, "val_loss": best.val_loss, "train_acc": best.train_acc,
        "train_loss": best.train_loss, "optuna_trial": optuna_trial, "config": config.to_dict(),
        "mean": list(mean), "std": list(std), **extra,
    })
    return folder


def read_model_folder(folder: Path) -> tuple[BestState, dict[str, Any]]:
    """What ``save_model_folder`` wrote: the best epoch (weights, probabilities, metrics) and any extras."""
    info = read_json(folder / BEST_FILE)
    best = BestState(int(info["epoch"]), float(info["val_acc"]), float(info["val_loss"]), float(info["train_acc"]),
                     float(info["train_loss"]), load_state_dict(folder / MODEL_FILE), np.load(folder / PROBS_FILE))
    known = {"epoch", "val_acc", "val_loss", "train_acc", "train_loss", "optuna_trial", "config", "mean", "std"}
    return best, {k: v for k, v in info.items() if k not in known}


def load_torch_file(path: Path) -> Any:
    """``torch.load(weights_only=True)`` of a file hpsearch wrote; a damaged or foreign file is a one-line error
    (never the advice to load it unsafely)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise HpsearchError(f"{str(path)!r} is missing.") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError,
            AttributeError, TypeError, IndexError):
        raise HpsearchError(f"{str(path)!r} is damaged or not an hpsearch checkpoint. Delete that model's folder "
                            f"and re-run the stage that wrote it.") from None


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Weights saved by hpsearch: a state_dict of tensors."""
    state = load_torch_file(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise HpsearchError(f"{str(path)!r} is damaged or not an hpsearch checkpoint (a state_dict of tensors). "
                            f"Delete that model's folder and re-run the stage that wrote it.")
    return state


@dataclass(frozen=True)
class SavedModel:
    """A trained model on disk: ``model.pt``, ``best.json`` (config, mean/std) and ``val_probs.npy``."""

    name: str
    folder: Path
    trial_id: str | None = None  # the search trial it is, if it is one

    @cached_property
    def info(self) -> dict:
        return read_json(self.folder / BEST_FILE)

    @property
    def config(self) -> TrialConfig:
        return TrialConfig.from_dict(self.info["config"])

    @property
    def val_probs(self) -> np.ndarray:
        return np.load(self.folder / PROBS_FILE)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return load_state_dict(self.folder / MODEL_FILE)

    def normalizer(self) -> Normalizer:
        return Normalizer(tuple(self.info["mean"]), tuple(self.info["std"]))

    def build(self, num_classes: int, in_chans: int, image_size: int, state: dict | None = None) -> nn.Module:
        """The architecture with these weights (or ``state``), in eval mode on the CPU."""
        config = self.config
        with preserved_global_rng():  # the random initialization is overwritten at once
            model = create_model(config.backbone, num_classes, in_chans, image_size, drop_rate=config.drop_rate,
                                 drop_path_rate=config.drop_path_rate)
        try:
            model.load_state_dict(self.state_dict() if state is None else state)
        except RuntimeError as err:
            raise HpsearchError(f"{str(self.folder / MODEL_FILE)!r} does not fit {config.backbone} "
                                f"({str(err).splitlines()[0]}); it is not this run's checkpoint.") from None
        return model.eval()


# --- ensemble records -------------------------------------------------------------------------------------------
RECORD_FORMAT = 2


@dataclass(frozen=True)
class Member:
    """One model an ensemble combines: its name, its folder (relative to the run directory) and its weight."""

    name: str
    path: str
    weight: float
    trial_id: str | None = None  # the search trial it is, if it is one

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "weight": self.weight, "trial_id": self.trial_id}


@dataclass(frozen=True)
class EnsembleRecord:
    """What ``ensembles/<name>.json`` holds: how to rebuild a model (a single trial or an ensemble), and its
    validation scores.

    ``model`` names the folder of a single model that replaces the members (a soup, a distilled student);
    ``tta`` the test-time views its members' probabilities are averaged over (empty: none; the record's name
    then ends in ``+tta``); ``temperature`` the temperature scaling fit on validation (1: none); the ``_oof``
    scores are out-of-fold (honest) validation scores; ``details`` whatever the method adds.
    """

    method: str
    estimator: str
    members: tuple[Member, ...]
    val_accuracy: float
    val_log_loss: float
    params: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    tta: tuple[str, ...] = ()
    temperature: float = 1.0
    val_accuracy_oof: float | None = None
    val_log_loss_oof: float | None = None

    @property
    def name(self) -> str:
        return variant_name(self.method, self.tta)

    @property
    def weights(self) -> np.ndarray:
        return np.array([m.weight for m in self.members], dtype=np.float64)

    def used_members(self) -> list[Member]:
        """The members that carry weight (greedy selection may leave some at 0)."""
        return [m for m in self.members if m.weight > 0]

    def to_json(self) -> dict[str, Any]:
        return {"format": RECORD_FORMAT, "method": self.method, "estimator": self.estimator, "params": self.params,
                "members": [m.to_json() for m in self.members], "val_accuracy": self.val_accuracy,
                "val_log_loss": self.val_log_loss, "val_accuracy_oof": self.val_accuracy_oof,
                "val_log_loss_oof": self.val_log_loss_oof, "tta": list(self.tta), "temperature": self.temperature,
                "model": self.model, "details": self.details}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: Path) -> EnsembleRecord:
        """Read a record; records written before the format had a number (format 1) are converted."""
        try:
            if data.get("format", 1) == 1:
                data = _from_format_1(data)
            members = tuple(Member(str(m["name"]), str(m["path"]), float(m["weight"]), m.get("trial_id"))
                            for m in data["members"])
            oof = {k: None if data.get(k) is None else float(data[k]) for k in ("val_accuracy_oof", "val_log_loss_oof")}
            return cls(str(data["method"]), str(data["estimator"]), members, float(data["val_accuracy"]),
                       float(data["val_log_loss"]), dict(data.get("params") or {}), data.get("model"),
                       dict(data.get("details") or {}), tuple(data.get("tta") or ()),
                       float(data.get("temperature") or 1.0), **oof)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise damaged(where, f"not an ensemble record: {type(err).__name__} {err}") from None


def _from_format_1(data: dict[str, Any]) -> dict[str, Any]:
    """The first layout: the method's extra fields sat beside the common ones, trial ids inside member names."""
    common = {"method", "estimator", "params", "members", "val_accuracy", "val_log_loss", "model"}
    members = [{**m, "trial_id": m["name"].partition(":")[2] if m["name"].startswith("trial:") else None}
               for m in data["members"]]
    return {**{k: v for k, v in data.items() if k in common}, "members": members,
            "details": {k: v for k, v in data.items() if k not in common}}


def variant_name(method: str, tta: tuple[str, ...] | list[str]) -> str:
    """A model's name in the tables and on the command line: the method, ``+tta`` with test-time views."""
    return f"{method}{TTA_SUFFIX}" if tta else method


def write_record(run_dir: Path, record: EnsembleRecord) -> Path:
    return write_json(Path(run_dir) / ENSEMBLES_DIR / f"{record.name}.json", record.to_json())


def read_record(path: Path) -> EnsembleRecord:
    try:
        data = read_json(path)
    except FileNotFoundError:
        raise HpsearchError(f"{str(path)!r} is missing.") from None
    except ValueError as err:
        raise damaged(path, f"not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise damaged(path, "not an ensemble record")
    return EnsembleRecord.from_json(data, path)


# --- the run directory ------------------------------------------------------------------------------------------------
class RunDir:
    """A run directory written by ``hpsearch tune``, read by every later stage."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if not (self.path / TRIALS_FILE).is_file():
            raise HpsearchError(f"{str(self.path)!r} is not a finished hpsearch run (no {TRIALS_FILE}); "
                                f"run `hpsearch tune RECIPE.py --out {self.path}` first.")

    def inside(self, relative: str | Path) -> Path:
        """``relative`` resolved within the run directory; a path that leads outside it is refused."""
        root = self.path.resolve()
        target = (root / relative).resolve()
        if target != root and root not in target.parents:
            raise HpsearchError(f"{str(relative)!r} (read from a file in {str(self.path)!r}) points outside the "
                                f"run directory; the file was edited or comes from elsewhere. Re-run the stage "
                                f"that wrote it.")
        return target

    @cached_property
    def config(self) -> dict:
        return read_json(self.path / CONFIG_FILE)

    @cached_property
    def data_config(self) -> DataConfig:
        return build_section(DataConfig, self.config["data"], "data")

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.path.name)

    @cached_property
    def split(self) -> pd.DataFrame:
        return load_split(self.path / SPLIT_FILE)

    @cached_property
    def classes(self) -> list[str]:
        ordered = self.split.drop_duplicates("label").sort_values("label")
        return ordered["class"].tolist()

    @cached_property
    def trials(self) -> pd.DataFrame:
        return read_trials(self.path)

    def history(self) -> pd.DataFrame | None:
        path = self.path / HISTORY_FILE
        return read_table(path, {"trial_id": str}) if path.is_file() else None

    def summary(self) -> dict:
        path = self.path / SUMMARY_FILE
        return read_json(path) if path.is_file() else {}

    def arrays(self, subset: str, key: TestSplitKey | None = None) -> ImageArrays:
        """Decoded images of one subset; the test subset needs the key only ``evaluate`` holds."""
        return load_subset(self.data_config, self.split, subset, key=key)

    def trial_data(self) -> TrialData:
        """The training and validation images, as a trial of this run sees them."""
        mean, std = self.data_config.mean_std
        return TrialData(self.arrays("train"), self.arrays("val"), tuple(self.classes), mean, std,
                         self.data_config.normalize)

    def ranked_trials(self) -> pd.DataFrame:
        """Completed trials with a checkpoint, best first (see ``rank_trials``)."""
        trials = self.trials
        usable = trials[(trials["status"] == "completed") & trials["checkpoint"].astype(str).str.lower().eq("true")]
        if usable.empty:
            raise HpsearchError(f"No completed trial with a checkpoint in {str(self.path)!r}.")
        return rank_trials(usable).reset_index(drop=True)

    def trial_model(self, trial_id: str) -> SavedModel:
        folder = self.path / TRIALS_DIR / str(trial_id)
        if not (folder / MODEL_FILE).is_file():
            raise HpsearchError(f"Trial {trial_id} has no saved model in {str(folder)!r}.")
        return SavedModel(f"trial:{trial_id}", folder, str(trial_id))

    def best_model(self) -> SavedModel:
        return self.trial_model(self.ranked_trials().iloc[0]["trial_id"])

    @property
    def image_shape(self) -> tuple[int, int]:
        """(in_chans, image_size) of the run's preprocessed images."""
        return self.data_config.in_chans, self.data_config.image_size

    def ensemble_path(self, name: str) -> Path:
        return self.path / ENSEMBLES_DIR / f"{name}.json"

    def oof_path(self, name: str) -> Path:
        """Where a model's out-of-fold validation probabilities are kept (what ensembles.csv is computed from)."""
        return self.path / ENSEMBLES_DIR / OOF_DIR / f"{name}.npy"

    def records(self) -> dict[str, EnsembleRecord]:
        """Every model ``hpsearch ensemble`` saved, by name (``greedy``, ``greedy+tta``, ...)."""
        folder = self.path / ENSEMBLES_DIR
        found = [read_record(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
        return {record.name: record for record in found}

    def record(self, name: str) -> EnsembleRecord:
        path = self.ensemble_path(name)
        if not path.is_file():
            built = ", ".join(self.records()) or "none"
            method = name.removesuffix(TTA_SUFFIX)
            raise HpsearchError(f"No ensemble {name!r} in {str(self.path)!r} (built: {built}); run "
                                f"`hpsearch ensemble {self.path} --methods {method}` first, or use --model best.")
        return read_record(path)

    def model(self, saved: SavedModel) -> nn.Module:
        """``saved``'s network for this run's images and classes, in eval mode on the CPU."""
        in_chans, size = self.image_shape
        return saved.build(len(self.classes), in_chans, size)

    def predict(self, saved: SavedModel, arrays: ImageArrays, views: tuple[str, ...] = (),
                batch_size: int = 256) -> np.ndarray:
        """Class probabilities of ``arrays`` under ``saved`` (averaged over test-time ``views``), on the CPU."""
        return predict_proba(self.model(saved), arrays, saved.normalizer(), batch_size, torch.device("cpu"), views)

    def val_probs(self, saved: SavedModel, views: tuple[str, ...] = (), val: ImageArrays | None = None) -> np.ndarray:
        """``saved``'s validation probabilities: saved by training, or with test-time views computed once and kept
        in its folder (``val_probs_tta-<views>.npy``)."""
        if not views:
            return saved.val_probs
        path = saved.folder / tta_probs_file(views)
        if path.is_file():
            return np.load(path)
        probs = self.predict(saved, val if val is not None else self.arrays("val"), views)
        atomic_save(path, lambda f: np.save(f, probs.astype(np.float32)))
        return probs

    def ensembles_table(self) -> pd.DataFrame | None:
        """``ensembles.csv``, or None before ``hpsearch ensemble`` ran."""
        path = self.path / ENSEMBLES_FILE
        if not path.is_file():
            return None
        table = pd.read_csv(path, nrows=0)
        if "model" not in table.columns and "method" in table.columns:
            raise HpsearchError(f"{str(path)!r} was written by an earlier hpsearch (no out-of-fold scores); rebuild it "
                                f"with `hpsearch ensemble {self.path}` (its ensembles still open in evaluate and "
                                f"predict).")
        return read_table(path, {"model": str, "method": str})

    def member_model(self, member: Member) -> SavedModel:
        """The saved model behind an ensemble member (its folder confined to this run directory)."""
        return SavedModel(member.name, self.inside(member.path), member.trial_id)


def tta_probs_file(views: tuple[str, ...]) -> str:
    return f"val_probs_tta-{'-'.join(views)}.npy"


def read_trials(run_dir: Path) -> pd.DataFrame:
    return read_table(Path(run_dir) / TRIALS_FILE, {"trial_id": str, "status": str})


def update_summary(run_dir: Path, seconds: float, trials: pd.DataFrame, best: pd.Series) -> dict[str, Any]:
    """Write ``summary.json``: the search's wall time (added up across resumes) and its best trial."""
    path = Path(run_dir) / SUMMARY_FILE
    earlier = float(read_json(path).get("wall_seconds", 0.0)) if path.is_file() else 0.0
    summary = {"wall_seconds": earlier + seconds, "trials": len(trials), "best_trial": str(best["trial_id"]),
               "best_val_acc": float(best["val_acc"])}
    write_json(path, summary)
    return summary


def holds_search(run_dir: Path) -> list[str]:
    """The search artifacts already in ``run_dir`` (empty: the folder can take a new search)."""
    return [name for name in SEARCH_ARTIFACTS if (Path(run_dir) / name).exists()]


def copy_model_folder(src: Path, dst: Path) -> None:
    """Replace the model folder ``dst`` with the model files of ``src`` (copied aside, then renamed into place)."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in MODEL_FOLDER_FILES:
        shutil.copy2(src / name, tmp / name)
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)
