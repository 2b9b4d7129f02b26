"""The Ray Tune function trainable: one trial, checkpointed every epoch so that it can continue exactly.

Each checkpoint holds the best epoch so far (``model.pt``, ``val_probs.npy``, ``best.json``: what the run
directory keeps) and ``state.pt``, everything needed to continue after the last finished epoch (weights,
optimizer, schedule, epoch, history, random state). Ray keeps only the latest checkpoint of each trial.
A trial that Ray restarts (after Ctrl-C, SIGKILL, a crash, or PBT's exploit step) continues from it.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
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
from hpsearch.training.parallel import DataParallel

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
    save_model_folder(folder, trainer.best, trainer.config, optuna_trial, trainer.mean, trainer.std,
                      trainer.epoch_choice_probs(), **extra)
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


def quiet_train_logs() -> None:
    """No log line per saved checkpoint, nor (Ray Train logs every report at INFO, under its file's path) per
    worker and epoch."""
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    try:
        from ray.train.v2._internal.execution import context
    except ImportError:  # another version of Ray Train: its logs stay as they are
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


def report_to_tune(payload: dict[str, Any], folder: str | None = None) -> None:
    """One result (with the checkpoint in ``folder``, if any) to the trial's Ray Tune session."""
    tune.report(payload, checkpoint=tune.Checkpoint.from_directory(folder) if folder else None)


@dataclass(frozen=True)
class WorkerSession:
    """One worker of a multi-worker trial: its place, its device, the checkpoint to continue from, how it reports
    (``report(payload, folder=None)``, to Ray Train) and the keys it adds to every result."""

    parallel: DataParallel
    device: torch.device
    checkpoint: Any
    report: Callable[..., None]
    results: dict[str, Any] = field(default_factory=dict)


def train_and_report(trial_config: TrialConfig, data: TrialData, optuna_trial: int | None, threads: float,
                     measure_train: bool = False, measure_cost: bool = False,
                     limits: dict[str, float] | None = None, worker: WorkerSession | None = None) -> None:
    """Report every epoch with a checkpoint; ``measure_train`` adds the accuracy on the unaugmented training split
    whenever validation improves (for overfitting sweeps); ``measure_cost`` the model's parameters and inference
    milliseconds per image (batch 1 and 32), measured once after the first epoch. As a ``worker`` of a
    multi-worker trial, rank 0 alone measures and checkpoints, and every worker stops when rank 0's costs exceed
    ``limits``."""
    quiet_train_logs()
    torch.set_num_threads(max(1, int(threads)))  # a trial is an entry point: it owns its process's threads
    keep_freed_memory()  # ... and its allocator: no mmap and zeroing of every step's activations
    parallel = worker.parallel if worker else None
    leader, report = parallel is None or parallel.leader, worker.report if worker else report_to_tune
    results = {"node_id": ray.get_runtime_context().get_node_id(), **(worker.results if worker else {})}
    trainer = Trainer(trial_config, data, device=worker.device if worker else None, parallel=parallel)
    checkpoint = worker.checkpoint if worker else tune.get_checkpoint()
    extra = restore_checkpoint(trainer, optuna_trial, checkpoint) if checkpoint is not None else {}

    def over_bounds() -> bool:
        infeasible = bool(over_limits(extra, limits))
        return parallel.any(infeasible) if parallel is not None else infeasible

    def send(metrics: dict[str, Any], with_checkpoint: bool) -> None:
        payload = {**metrics, **extra, "infeasible": bool(over_limits(extra, limits)), **results}
        if not (with_checkpoint and leader):
            report(payload)
            return
        with tempfile.TemporaryDirectory(prefix="hpsearch-epoch-") as tmp:
            save_checkpoint(Path(tmp), trainer, optuna_trial, extra)
            report(payload, tmp)

    def on_epoch(metrics: dict[str, Any], best: BestState | None) -> bool:
        if best is not None and measure_train:
            extra["clean_train_acc"] = float((trainer.predict(data.train).argmax(1) == data.train.labels).mean())
        if measure_cost and leader and "ms_per_image" not in extra:
            extra.update(trainer.inference_cost())
        stop = over_bounds()  # a model too slow or too large for the deployment stops here
        send(metrics, with_checkpoint=True)
        return stop

    if trainer.history and (finished(trainer) or over_bounds()):
        # Restored after its last epoch: when Ray paused the trial (PBT, Hyperband) as that epoch was being
        # reported, the checkpoint was kept but the result was not; report it again so the trial ends with it.
        send(trainer.history[-1], with_checkpoint=False)
        return
    trainer.fit(on_epoch)


def finished(trainer: Trainer) -> bool:
    """Nothing is left to train: every epoch ran, or the last one hit the patience limit."""
    return trainer.epoch >= trainer.config.epochs or bool(trainer.history[-1].get("stopped_by_patience"))
