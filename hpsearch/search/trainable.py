"""The Ray Tune function trainable: one trial, with its best epoch saved as a Ray checkpoint."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ray import tune

from hpsearch.data import ImageArrays, TrialData
from hpsearch.io import write_json
from hpsearch.search.space import split_trial_config
from hpsearch.training import BestState, Trainer, TrialConfig

MODEL_FILE, PROBS_FILE, BEST_FILE = "model.pt", "val_probs.npy", "best.json"


def save_best(folder: Path, best: BestState, config: TrialConfig, optuna_trial: int | None,
              mean: tuple[float, ...], std: tuple[float, ...]) -> None:
    """Write the best epoch's weights, validation probabilities, metrics and normalization into ``folder``."""
    torch.save(best.state_dict, folder / MODEL_FILE)
    np.save(folder / PROBS_FILE, best.val_probs.astype(np.float32))
    write_json(folder / BEST_FILE, {
        "epoch": best.epoch, "val_acc": best.val_acc, "val_loss": best.val_loss, "train_acc": best.train_acc,
        "train_loss": best.train_loss, "optuna_trial": optuna_trial, "config": config.to_dict(),
        "mean": list(mean), "std": list(std),
    })


def run_trial(config: dict[str, Any], data: TrialData, threads: float = 1.0) -> None:
    """Train one sampled configuration; report every epoch, checkpoint only when validation improves."""
    trial_config, optuna_trial = split_trial_config(config)
    train_and_report(trial_config, data, optuna_trial, threads)


def run_member(config: dict[str, Any], data: TrialData, samples: list[np.ndarray], threads: float = 1.0) -> None:
    """Train ensemble member ``config["member"]`` on its resample of the training split (bagging)."""
    values = dict(config)
    member = int(values.pop("member"))
    trial_config, _ = split_trial_config(values)
    index = samples[member]
    resampled = ImageArrays(data.train.images[index], data.train.labels[index])
    train_and_report(trial_config, replace(data, train=resampled), None, threads)


def train_and_report(trial_config: TrialConfig, data: TrialData, optuna_trial: int | None, threads: float) -> None:
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # no line per saved checkpoint

    def on_epoch(metrics: dict[str, Any], best: BestState | None) -> None:
        if best is None:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory(prefix="hpsearch-best-") as tmp:
            save_best(Path(tmp), best, trial_config, optuna_trial, trainer.mean, trainer.std)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    trainer = Trainer(trial_config, data, threads=max(1, int(threads)))
    trainer.fit(on_epoch)
