"""The Ray Tune function trainable: one trial, checkpointed every epoch so that it can continue exactly.

Each checkpoint holds the best epoch so far (``model.pt``, ``val_probs.npy``, ``best.json``: what the run
directory keeps) and ``state.pt``, everything needed to continue after the last finished epoch (weights,
optimizer, schedule, epoch, history, random state). Ray keeps only the latest checkpoint of each trial.
A trial that Ray restarts (after Ctrl-C, SIGKILL, a crash, or PBT's exploit step) continues from it.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from ray import tune

from hpsearch.allocator import keep_freed_memory
from hpsearch.data import ImageArrays, TrialData
from hpsearch.recipe import load_module
from hpsearch.rundir import COST_COLUMNS, load_torch_file, read_model_folder, save_model_folder
from hpsearch.search.space import split_trial_config
from hpsearch.training import BestState, Trainer, TrialConfig

STATE_FILE = "state.pt"  # inside a Ray checkpoint, beside the model folder's files


def run_trial(config: dict[str, Any], data: TrialData, threads: float = 1.0, recipe_source: str | None = None,
              recipe_path: str | None = None, limits: dict[str, float] | None = None) -> None:
    """Train one sampled configuration, reporting (and checkpointing) every epoch.

    ``recipe_source`` (the recipe's text) is executed first in the worker, so that models a recipe
    registers with timm exist on every node of a cluster. The trial's inference cost is measured after its
    first epoch; a trial whose cost exceeds ``limits`` (cost name -> bound) is infeasible and stops there.
    """
    if recipe_source is not None and recipe_path is not None:
        load_module(recipe_path, recipe_source)
    trial_config, optuna_trial = split_trial_config(config)
    train_and_report(trial_config, data, optuna_trial, threads, measure_cost=True, limits=limits)


def run_member(config: dict[str, Any], data: TrialData, members: list[TrialConfig],
               samples: list[np.ndarray] | None = None, measure_train: bool = False, threads: float = 1.0) -> None:
    """Train ``members[config["member"]]``, on its resample of the training split when ``samples`` is given."""
    member = int(config["member"])
    if samples is not None:
        index = samples[member]
        data = replace(data, train=ImageArrays(data.train.images[index], data.train.labels[index]))
    train_and_report(members[member], data, None, threads, measure_train)


def save_checkpoint(folder: Path, trainer: Trainer, optuna_trial: int | None, extra: dict[str, Any]) -> None:
    assert trainer.best is not None
    save_model_folder(folder, trainer.best, trainer.config, optuna_trial, trainer.mean, trainer.std, **extra)
    torch.save({**trainer.checkpoint(), "trial": optuna_trial}, folder / STATE_FILE)


def restore_checkpoint(trainer: Trainer, optuna_trial: int | None = None,
                       checkpoint: tune.Checkpoint | None = None) -> dict[str, Any]:
    """Continue from ``checkpoint`` (default: the trial's latest Ray Tune checkpoint), if there is one; return the
    best epoch's extras.

    A checkpoint written by another trial is PBT's exploit step: this trial continues from the donor's weights,
    optimizer and epoch with its own hyperparameters, and its best epoch counts from there (the donor's best
    stays the donor's). ``exploited_from`` and ``exploited_at_epoch`` say so in its results.
    """
    checkpoint = checkpoint or tune.get_checkpoint()
    if checkpoint is None:
        return {}
    with checkpoint.as_directory() as folder:
        best, extra = read_model_folder(Path(folder))
        state = load_torch_file(Path(folder) / STATE_FILE)
    writer = state.get("trial")
    exploited = writer is not None and optuna_trial is not None and int(writer) != int(optuna_trial)
    exploited = exploited and int(state["epoch"]) < trainer.config.epochs  # a finished donor leaves nothing to do
    trainer.restore(state, None if exploited else best)
    if exploited:
        extra = {key: value for key, value in extra.items() if key in COST_COLUMNS}
        extra.update(exploited_from=int(writer), exploited_at_epoch=int(state["epoch"]))
    return extra


def over_limits(extra: dict[str, Any], limits: dict[str, float] | None) -> list[str]:
    """The costs in ``extra`` that exceed their bound in ``limits``."""
    return [key for key, bound in (limits or {}).items() if extra.get(key) is not None and extra[key] > bound]


def train_and_report(trial_config: TrialConfig, data: TrialData, optuna_trial: int | None, threads: float,
                     measure_train: bool = False, measure_cost: bool = False,
                     limits: dict[str, float] | None = None) -> None:
    """Report every epoch to Ray Tune with a checkpoint; ``measure_train`` adds the accuracy on the unaugmented
    training split whenever validation improves (for overfitting sweeps); ``measure_cost`` the model's
    parameters and inference milliseconds per image (batch 1 and 32), measured once after the first epoch."""
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # no line per saved checkpoint
    torch.set_num_threads(max(1, int(threads)))  # a trial is an entry point: it owns its process's threads
    keep_freed_memory()  # ... and its allocator: no mmap and zeroing of every step's activations
    node = ray.get_runtime_context().get_node_id()
    trainer = Trainer(trial_config, data)
    extra = restore_checkpoint(trainer, optuna_trial)

    def on_epoch(metrics: dict[str, Any], best: BestState | None) -> bool:
        if best is not None and measure_train:
            extra["clean_train_acc"] = float((trainer.predict(data.train).argmax(1) == data.train.labels).mean())
        if measure_cost and "ms_per_image" not in extra:
            extra.update(trainer.inference_cost())
        infeasible = bool(over_limits(extra, limits))
        with tempfile.TemporaryDirectory(prefix="hpsearch-epoch-") as tmp:
            save_checkpoint(Path(tmp), trainer, optuna_trial, extra)
            tune.report({**metrics, **extra, "infeasible": infeasible, "node_id": node},
                        checkpoint=tune.Checkpoint.from_directory(tmp))
        return infeasible  # a model too slow or too large for the deployment stops here

    if trainer.history and (finished(trainer) or over_limits(extra, limits)):
        # Restored after its last epoch: when Ray paused the trial (PBT, Hyperband) as that epoch was being
        # reported, the checkpoint was kept but the result was not; report it again so the trial ends with it.
        tune.report({**trainer.history[-1], **extra, "infeasible": bool(over_limits(extra, limits)), "node_id": node})
        return
    trainer.fit(on_epoch)


def finished(trainer: Trainer) -> bool:
    """Nothing is left to train: every epoch ran, or the last one hit the patience limit."""
    return trainer.epoch >= trainer.config.epochs or bool(trainer.history[-1].get("stopped_by_patience"))
