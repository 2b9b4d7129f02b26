"""``RunDir``: a finished search as every later stage reads it."""

from __future__ import annotations

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
from hpsearch.io import atomic_save, read_json, write_json
from hpsearch.rundir.layout import (
    CONFIG_FILE,
    ENSEMBLES_DIR,
    ENSEMBLES_FILE,
    HISTORY_FILE,
    MODEL_FILE,
    OOF_DIR,
    SEARCH_ARTIFACTS,
    SUMMARY_FILE,
    TRIALS_DIR,
    TRIALS_FILE,
    rank_trials,
    read_table,
)
from hpsearch.rundir.models import (
    SavedModel,
    tta_probs_file,
)
from hpsearch.rundir.records import (
    EnsembleRecord,
    Member,
    read_record,
)
from hpsearch.training import predict_proba


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
        return read_history(self.path, missing_ok=True)

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
                         self.data_config.normalize, self.data_config.crop)

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
            raise HpsearchError(f"{self.no_record(name)}.")
        return read_record(path)

    def no_record(self, name: str) -> str:
        """The start of the error for a model ``name`` that was not built: which models were."""
        built = ", ".join(self.records()) or "none"
        return f"No ensemble {name!r} in {str(self.path)!r} (built: {built})"

    def model(self, saved: SavedModel) -> nn.Module:
        """``saved``'s network for this run's images and classes, in eval mode on the CPU."""
        in_chans, size = self.image_shape
        return saved.build(len(self.classes), in_chans, size)

    def predict(self, saved: SavedModel, arrays: ImageArrays, views: tuple[str, ...] = (),
                batch_size: int = 256) -> np.ndarray:
        """Class probabilities of ``arrays`` under ``saved`` (averaged over test-time ``views``), on the CPU."""
        return predict_proba(self.model(saved), arrays, saved.normalizer(), batch_size, torch.device("cpu"), views,
                             self.data_config.crop)

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
        return read_table(path)

    def member_model(self, member: Member) -> SavedModel:
        """The saved model behind an ensemble member (its folder confined to this run directory)."""
        return SavedModel(member.name, self.inside(member.path), member.trial_id)


def read_trials(run_dir: Path) -> pd.DataFrame:
    """The run's ``trials.csv``."""
    return read_table(Path(run_dir) / TRIALS_FILE, {"status": str})


def read_history(run_dir: Path, missing_ok: bool = False) -> pd.DataFrame | None:
    """The run's ``history.csv`` (one row per trial and epoch), trial ids kept as strings; ``None`` when the run
    has none and ``missing_ok``."""
    path = Path(run_dir) / HISTORY_FILE
    if missing_ok and not path.is_file():
        return None
    return read_table(path)


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


