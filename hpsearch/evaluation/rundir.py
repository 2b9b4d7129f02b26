"""Read a finished search from its run directory: trials, split, data config and trained models."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from hpsearch.config import build_section
from hpsearch.data import DataConfig, ImageArrays, load_split, load_subset
from hpsearch.errors import HpsearchError
from hpsearch.io import read_json
from hpsearch.models import create_model
from hpsearch.search.trainable import BEST_FILE, MODEL_FILE, PROBS_FILE
from hpsearch.training import Normalizer, TrialConfig, predict_proba


@dataclass(frozen=True)
class SavedModel:
    """A trained model on disk: ``model.pt``, ``best.json`` (config, mean/std) and ``val_probs.npy``."""

    name: str
    folder: Path

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
        return torch.load(self.folder / MODEL_FILE, map_location="cpu", weights_only=True)

    def normalizer(self) -> Normalizer:
        return Normalizer(tuple(self.info["mean"]), tuple(self.info["std"]))

    def build(self, num_classes: int, in_chans: int, image_size: int, state: dict | None = None) -> nn.Module:
        """The architecture with these weights (or ``state``), in eval mode on the CPU."""
        config = self.config
        model = create_model(config.backbone, num_classes, in_chans, image_size, drop_rate=config.drop_rate,
                             drop_path_rate=config.drop_path_rate)
        model.load_state_dict(self.state_dict() if state is None else state)
        return model.eval()


class RunDir:
    """A run directory written by ``hpsearch tune``."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if not (self.path / "trials.csv").is_file():
            raise HpsearchError(f"{str(self.path)!r} is not a finished hpsearch run (no trials.csv); "
                                f"run `hpsearch tune RECIPE.py --out {self.path}` first.")

    @cached_property
    def config(self) -> dict:
        return read_json(self.path / "config.json")

    @cached_property
    def data_config(self) -> DataConfig:
        return build_section(DataConfig, self.config["data"], "data")

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @cached_property
    def split(self) -> pd.DataFrame:
        return load_split(self.path / "split.csv")

    @cached_property
    def classes(self) -> list[str]:
        ordered = self.split.drop_duplicates("label").sort_values("label")
        return ordered["class"].tolist()

    @cached_property
    def trials(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "trials.csv", dtype={"trial_id": str})

    def arrays(self, subset: str) -> ImageArrays:
        return load_subset(self.data_config, self.split, subset)

    def ranked_trials(self) -> pd.DataFrame:
        """Completed trials with a checkpoint, best validation accuracy first (loss breaks ties)."""
        trials = self.trials
        usable = trials[(trials["status"] == "completed") & trials["checkpoint"].astype(bool)]
        if usable.empty:
            raise HpsearchError(f"No completed trial with a checkpoint in {str(self.path)!r}.")
        return usable.sort_values(["val_acc", "val_loss"], ascending=[False, True]).reset_index(drop=True)

    def trial_model(self, trial_id: str) -> SavedModel:
        folder = self.path / "trials" / trial_id
        if not (folder / MODEL_FILE).is_file():
            raise HpsearchError(f"Trial {trial_id} has no saved model in {str(folder)!r}.")
        return SavedModel(f"trial:{trial_id}", folder)

    @property
    def image_shape(self) -> tuple[int, int]:
        """(in_chans, image_size) of the run's preprocessed images."""
        return self.data_config.in_chans, self.data_config.image_size


def model_probs(saved: SavedModel, arrays: ImageArrays, run: RunDir, batch_size: int = 256,
                state: dict | None = None) -> tuple[np.ndarray, float, int]:
    """Class probabilities of ``arrays`` under ``saved``; also milliseconds per image and parameter count."""
    import time

    in_chans, size = run.image_shape
    model = saved.build(len(run.classes), in_chans, size, state)
    start = time.perf_counter()
    probs = predict_proba(model, arrays, saved.normalizer(), batch_size, torch.device("cpu"))
    ms = 1000.0 * (time.perf_counter() - start) / max(1, len(arrays))
    return probs, ms, sum(p.numel() for p in model.parameters())
