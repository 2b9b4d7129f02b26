"""The Ray Tune function trainable: one trial, with its best epoch saved as a Ray checkpoint."""

from __future__ import annotations

import logging
import sys
import types
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import ray
from ray import tune

from hpsearch.data import ImageArrays, TrialData
from hpsearch.io import write_json
from hpsearch.search.space import split_trial_config
from hpsearch.training import BestState, Trainer, TrialConfig

MODEL_FILE, PROBS_FILE, BEST_FILE = "model.pt", "val_probs.npy", "best.json"


def load_recipe_source(source: str, name: str) -> None:
    """Execute a recipe's text once per worker process (it defines names and may register models)."""
    module_name = f"hpsearch_recipe_{name}"
    if module_name in sys.modules:
        return
    module = types.ModuleType(module_name)
    module.__file__ = f"<recipe {name}>"
    sys.modules[module_name] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102  recipes are trusted code


def save_best(folder: Path, best: BestState, config: TrialConfig, optuna_trial: int | None,
              mean: tuple[float, ...], std: tuple[float, ...], **extra: Any) -> None:
    """Write the best epoch's weights, validation probabilities, metrics and normalization into ``folder``."""
    torch.save(best.state_dict, folder / MODEL_FILE)
    np.save(folder / PROBS_FILE, best.val_probs.astype(np.float32))
    write_json(folder / BEST_FILE, {
        "epoch": best.epoch, "val_acc": best.val_acc, "val_loss": best.val_loss, "train_acc": best.train_acc,
        "train_loss": best.train_loss, "optuna_trial": optuna_trial, "config": config.to_dict(),
        "mean": list(mean), "std": list(std), **extra,
    })


def run_trial(config: dict[str, Any], data: TrialData, threads: float = 1.0, recipe_source: str | None = None,
              recipe_name: str = "recipe") -> None:
    """Train one sampled configuration; report every epoch, checkpoint only when validation improves.

    ``recipe_source`` (the recipe's text) is executed first in the worker, so that models a recipe
    registers with timm exist on every node of a cluster.
    """
    if recipe_source is not None:
        load_recipe_source(recipe_source, recipe_name)
    trial_config, optuna_trial = split_trial_config(config)
    train_and_report(trial_config, data, optuna_trial, threads)


def run_member(config: dict[str, Any], data: TrialData, members: list[TrialConfig],
               samples: list[np.ndarray] | None = None, measure_train: bool = False, threads: float = 1.0) -> None:
    """Train ``members[config["member"]]``, on its resample of the training split when ``samples`` is given."""
    member = int(config["member"])
    if samples is not None:
        index = samples[member]
        data = replace(data, train=ImageArrays(data.train.images[index], data.train.labels[index]))
    train_and_report(members[member], data, None, threads, measure_train)


def train_and_report(trial_config: TrialConfig, data: TrialData, optuna_trial: int | None, threads: float,
                     measure_train: bool = False) -> None:
    """Report every epoch to Ray Tune and checkpoint the best one; ``measure_train`` adds the accuracy on
    the unaugmented training split whenever validation improves (for overfitting sweeps)."""
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # no line per saved checkpoint

    node = ray.get_runtime_context().get_node_id()

    def on_epoch(metrics: dict[str, Any], best: BestState | None) -> None:
        metrics = {**metrics, "node_id": node}
        if best is None:
            tune.report(metrics)
            return
        extra = {}
        if measure_train:
            extra["clean_train_acc"] = float((trainer.predict(data.train).argmax(1) == data.train.labels).mean())
            metrics = {**metrics, **extra}
        with tempfile.TemporaryDirectory(prefix="hpsearch-best-") as tmp:
            save_best(Path(tmp), best, trial_config, optuna_trial, trainer.mean, trainer.std, **extra)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    trainer = Trainer(trial_config, data, threads=max(1, int(threads)))
    trainer.fit(on_epoch)
