"""Multi-worker trials: one Ray Tune trial trains on ``budget.workers_per_trial`` processes with Ray Train (DDP).

The Tune trial is a light driver. It starts a ``TorchTrainer`` whose workers each train on a slice of every batch
(``hpsearch.training.parallel``); rank 0 reports each epoch with a checkpoint in the same format as a
single-process trial (``trainable.save_checkpoint``), and the driver passes both on to Ray Tune. The scheduler,
Tune's checkpoints (the source of truth on resume), the Optuna study and ``trials.csv`` are the same as for any
trial. A trial Ray Tune restarts (resume after a SIGKILL, Hyperband's pause) hands its latest Tune checkpoint to
the workers; Ray Train's own copies of the checkpoints are removed when the trial ends.

When Ray Tune stops a trial early (ASHA, a time budget, a pause), it ends the driver's process, and with it Ray
Train's controller and workers; but the placement group that held the workers' CPUs and GPUs outlives them
(Ray Train's own cleaner needs Ray's dashboard). ``ReleaseWorkerGroups``, a Tune callback in the search's
process, removes the group of every trial that is no longer running.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path
from typing import Any

from ray import tune
from ray.train import UserCallback
from ray.tune import Callback

from hpsearch.data import TrialData
from hpsearch.recipe import load_module
from hpsearch.search.space import split_trial_config
from hpsearch.search.trainable import WorkerSession, train_and_report
from hpsearch.training.parallel import DataParallel

POLL_S = 1.0  # how often the driver looks whether the workers are still training
GROUP_KEY = "worker_group"  # in each result: the hex id of the placement group holding the trial's workers
log = logging.getLogger(__name__)


class ReleaseWorkerGroups(Callback):
    """Once a multi-worker trial is no longer running (stopped, paused, failed or finished), removes the placement
    group that held its workers and Ray Train's copies of its checkpoints under ``storage``; for a trial restarted
    with new workers, the old group."""

    def __init__(self, storage: str):
        self.storage = storage
        self.groups: dict[str, str] = {}  # trial id -> hex id of its workers' placement group

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        group = result.get(GROUP_KEY)
        if group and self.groups.get(trial.trial_id, group) != group:
            remove_group(self.groups[trial.trial_id])
        if group:
            self.groups[trial.trial_id] = group

    def on_step_begin(self, iteration, trials, **info) -> None:
        for trial in trials:
            if trial.trial_id in self.groups and trial.status != "RUNNING":
                remove_group(self.groups.pop(trial.trial_id))
                remove_train_copies(self.storage, trial.trial_id)

    def on_experiment_end(self, trials, **info) -> None:
        for trial_id, group in self.groups.items():
            remove_group(group)
            remove_train_copies(self.storage, trial_id)
        self.groups.clear()


def remove_train_copies(storage: str, trial_id: str) -> None:
    """Delete Ray Train's copies of a trial's checkpoints under ``storage`` (on a URI they stay: Ray Train keeps
    the latest two per trial)."""
    if "://" not in storage:
        shutil.rmtree(Path(storage) / trial_id, ignore_errors=True)


def remove_group(group: str) -> None:
    """Remove the placement group with hex id ``group`` (one Ray Train already removed is left alone)."""
    import ray
    from ray.util.placement_group import PlacementGroup

    try:
        ray.util.remove_placement_group(PlacementGroup(ray.PlacementGroupID(bytes.fromhex(group))))
    except Exception as err:  # noqa: BLE001  gone already, or Ray is shutting down
        log.debug("Placement group %s was not removed: %s", group, err)


class ForwardToTune(UserCallback):
    """Runs in Ray Train's controller: puts rank 0's metrics and checkpoint of every report on a queue that the
    trial's driver reads (one item at a time: the workers wait until the driver took the previous one)."""

    def __init__(self, queue):
        self.queue = queue

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        self.queue.put((dict(metrics[0]), checkpoint))


def run_multiworker_trial(config: dict[str, Any], data: TrialData, workers: int, threads: float = 1.0,
                          gpus: float = 0.0, storage: str = "", recipe_source: str | None = None,
                          recipe_path: str | None = None, limits: dict[str, float] | None = None) -> None:
    """The Ray Tune trainable of a multi-worker trial: train ``config`` on ``workers`` Ray Train workers (each
    with ``threads`` CPUs and ``gpus`` GPUs) and report every epoch to Ray Tune. ``storage`` is the folder (or
    URI) where Ray Train keeps the trial's checkpoints while it runs."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.util.queue import Queue

    name = tune.get_context().get_trial_id()
    remove_train_copies(storage, name)  # Tune's checkpoint, not a stale Train run, is where to continue
    queue = Queue(maxsize=1, actor_options={"num_cpus": 0})
    loop = {"config": config, "data": data, "threads": threads, "recipe_source": recipe_source,
            "recipe_path": recipe_path, "limits": limits, "checkpoint": tune.get_checkpoint()}
    trainer = TorchTrainer(
        train_worker, train_loop_config=loop, torch_config=TorchConfig(backend="nccl" if gpus > 0 else "gloo"),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpus > 0,
                                     resources_per_worker={"CPU": threads, "GPU": gpus}),
        run_config=RunConfig(name=name, storage_path=storage, callbacks=[ForwardToTune(queue)],
                             checkpoint_config=CheckpointConfig(num_to_keep=2),
                             failure_config=FailureConfig(max_failures=0)),
    )
    failure: list[BaseException] = []
    fit = threading.Thread(target=fit_and_catch, args=(trainer, failure), name="hpsearch-train-fit", daemon=True)
    fit.start()
    try:
        forward_reports(queue, fit)
    finally:
        if not fit.is_alive():
            remove_train_copies(storage, name)
    if failure:
        raise first_worker_error(failure[0])


def fit_and_catch(trainer, failure: list[BaseException]) -> None:
    try:
        trainer.fit()
    except BaseException as err:  # noqa: BLE001  handed to the driver's thread, which raises it
        failure.append(err)


def forward_reports(queue, fit: threading.Thread) -> None:
    """Report every item the workers put on ``queue`` to Ray Tune, until they are done and the queue is empty."""
    from ray.util.queue import Empty

    while True:
        try:
            metrics, checkpoint = queue.get(timeout=POLL_S)
        except Empty:
            if fit.is_alive() or not queue.empty():
                continue
            return
        if checkpoint is None:
            tune.report(metrics)
            continue
        with checkpoint.as_directory() as folder:
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def first_worker_error(err: BaseException) -> BaseException:
    """The exception a worker raised (what a single-process trial would have raised), else Ray Train's own."""
    failures = getattr(err, "worker_failures", None) or {}
    return failures[min(failures)] if failures else err


def report_to_train(payload: dict[str, Any], folder: str | None = None) -> None:
    """One result (with the checkpoint in ``folder``, if any) to this worker's Ray Train session."""
    import ray.train

    ray.train.report(payload, checkpoint=ray.train.Checkpoint.from_directory(folder) if folder else None)


def train_worker(loop: dict[str, Any]) -> None:
    """One Ray Train worker of a multi-worker trial: its slice of every batch, DDP, a report per epoch."""
    import ray.train
    import ray.train.torch

    if loop["recipe_source"] is not None and loop["recipe_path"] is not None:
        load_module(loop["recipe_path"], loop["recipe_source"])
    context, device = ray.train.get_context(), ray.train.torch.get_device()
    group = ray.util.get_current_placement_group()
    worker = WorkerSession(
        DataParallel(context.get_world_rank(), context.get_world_size(), device.type), device,
        ray.train.get_checkpoint() or loop["checkpoint"],  # Train's newer one, else Tune's
        report_to_train, {"workers": context.get_world_size(), GROUP_KEY: group.id.hex() if group else ""})
    trial_config, optuna_trial = split_trial_config(loop["config"])
    train_and_report(trial_config, loop["data"], optuna_trial, loop["threads"], measure_cost=True,
                     limits=loop["limits"], worker=worker)
