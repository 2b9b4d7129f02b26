"""The Ray Tune function trainable: one trial, with its best epoch saved as a Ray checkpoint."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray import tune

from hpsearch.data import ImageArrays, TrialData
from hpsearch.recipe import load_module
from hpsearch.rundir import save_model_folder
from hpsearch.search.space import split_trial_config
from hpsearch.training import BestState, Trainer, TrialConfig


def run_trial(config: dict[str, Any], data: TrialData, threads: float = 1.0, recipe_source: str | None = None,
              recipe_path: str | None = None) -> None:
    """Train one sampled configuration; report every epoch, checkpoint only when validation improves.

    ``recipe_source`` (the recipe's text) is executed first in the worker, so that models a recipe
    registers with timm exist on every node of a cluster.
    """
    if recipe_source is not None and recipe_path is not None:
        load_module(recipe_path, recipe_source)
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
            save_model_folder(Path(tmp), best, trial_config, optuna_trial, trainer.mean, trainer.std, **extra)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    trainer = Trainer(trial_config, data, threads=max(1, int(threads)))
    trainer.fit(on_epoch)
