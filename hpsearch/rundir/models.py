"""One trained model's folder (``model.pt``, ``val_probs.npy``, ``best.json``): writing, reading, building."""

from __future__ import annotations

import os
import pickle
import shutil
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hpsearch.errors import HpsearchError
from hpsearch.io import atomic_save, read_json, write_json
from hpsearch.models import create_model
from hpsearch.rundir.layout import (
    BEST_FILE,
    MODEL_FILE,
    MODEL_FOLDER_FILES,
    PROBS_FILE,
)
from hpsearch.training import BestState, Normalizer, TrialConfig, inference_layout, preserved_global_rng


def save_model_folder(folder: Path, best: BestState, config: TrialConfig, optuna_trial: int | None,
                      mean: tuple[float, ...], std: tuple[float, ...],
                      epoch_choice: Mapping[tuple[str, ...], np.ndarray] | None = None, **extra: Any) -> Path:
    """Write the best epoch's weights, validation probabilities, metrics and normalization into ``folder``, and
    the out-of-fold epoch choice's validation probabilities (test-time views -> probabilities), if given."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_save(folder / MODEL_FILE, lambda f: torch.save(best.state_dict, f))
    atomic_save(folder / PROBS_FILE, lambda f: np.save(f, best.val_probs.astype(np.float32)))
    drop_stale_probs(folder)
    for views, probs in (epoch_choice or {}).items():
        atomic_save(folder / epoch_oof_file(views), lambda f, p=probs: np.save(f, p.astype(np.float32)))
    write_json(folder / BEST_FILE, {
        "epoch": best.epoch, "val_acc": best.val_acc, "val_loss": best.val_loss, "train_acc": best.train_acc,
        "train_loss": best.train_loss, "optuna_trial": optuna_trial, "config": config.to_dict(),
        "mean": list(mean), "std": list(std), **extra,
    })
    return folder


def save_refit_folder(folder: Path, state: dict[str, torch.Tensor], config: TrialConfig, epoch: int,
                      mean: tuple[float, ...], std: tuple[float, ...], **extra: Any) -> Path:
    """Write a model trained without validation (a refit): its weights after ``epoch`` and ``best.json`` (no
    validation scores or probabilities: it was trained on the validation images). ``best.json`` comes last, so
    a folder with one holds a whole model."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / BEST_FILE).unlink(missing_ok=True)
    atomic_save(folder / MODEL_FILE, lambda f: torch.save(state, f))
    write_json(folder / BEST_FILE, {"epoch": epoch, "config": config.to_dict(), "mean": list(mean), "std": list(std),
                                    **extra})
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

    def epoch_oof_probs(self, views: tuple[str, ...]) -> np.ndarray | None:
        """Validation probabilities of the out-of-fold epoch choice with ``views`` (None if training kept none:
        models trained before it existed, other views, models that are not one training run)."""
        path = self.folder / epoch_oof_file(views)
        return np.load(path) if path.is_file() else None

    def state_dict(self) -> dict[str, torch.Tensor]:
        return load_state_dict(self.folder / MODEL_FILE)

    def normalizer(self) -> Normalizer:
        return Normalizer(tuple(self.info["mean"]), tuple(self.info["std"]))

    def build(self, num_classes: int, in_chans: int, image_size: int, state: dict | None = None) -> nn.Module:
        """The architecture with these weights (or ``state``), in eval mode on the CPU (NHWC layout)."""
        config = self.config
        with preserved_global_rng():  # the random initialization is overwritten at once
            model = create_model(config.backbone, num_classes, in_chans, image_size, drop_rate=config.drop_rate,
                                 drop_path_rate=config.drop_path_rate)
        try:
            model.load_state_dict(self.state_dict() if state is None else state)
        except RuntimeError as err:
            raise HpsearchError(f"{str(self.folder / MODEL_FILE)!r} does not fit {config.backbone} "
                                f"({str(err).splitlines()[0]}); it is not this run's checkpoint.") from None
        return inference_layout(model)


# --- ensemble records -------------------------------------------------------------------------------------------
TTA_PROBS_PATTERN, EPOCH_OOF_PATTERN = "val_probs_tta-*.npy", "val_probs_epoch_oof*.npy"


def tta_probs_file(views: tuple[str, ...]) -> str:
    return f"val_probs_tta-{'-'.join(views)}.npy"


def drop_stale_probs(folder: Path) -> None:
    """Remove the probabilities cached beside a model's weights (test-time views, the out-of-fold epoch choice),
    before new weights are written into ``folder``."""
    for stale in [*folder.glob(TTA_PROBS_PATTERN), *folder.glob(EPOCH_OOF_PATTERN)]:
        stale.unlink()


def epoch_oof_file(views: tuple[str, ...]) -> str:
    """The file of a model's out-of-fold epoch choice's validation probabilities with ``views``."""
    return f"val_probs_epoch_oof{'-' if views else ''}{'-'.join(views)}.npy"


def copy_model_folder(src: Path, dst: Path) -> None:
    """Replace the model folder ``dst`` with the model files of ``src`` (copied aside, then renamed into place)."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in MODEL_FOLDER_FILES:
        shutil.copy2(src / name, tmp / name)
    for optional in src.glob(EPOCH_OOF_PATTERN):
        shutil.copy2(optional, tmp / optional.name)
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)
