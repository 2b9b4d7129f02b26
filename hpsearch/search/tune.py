"""``hpsearch tune``: Ray Tune + OptunaSearch (TPE, SQLite) + ASHA over a recipe's search space."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import pandas as pd

from hpsearch.data import prepare_trial_data
from hpsearch.errors import SearchError
from hpsearch.rundir import EXPERIMENT_DIR, rank_trials, study_url, update_summary
from hpsearch.runinfo import record_run
from hpsearch.search.export import export_experiment
from hpsearch.search.space import TrialSpace, validate_space
from hpsearch.search.trainable import run_trial

if TYPE_CHECKING:
    from hpsearch.recipe import Recipe

METRIC, MODE = "best_val_acc", "max"


@dataclass
class SearchOptions:
    """How to run a search, beyond the recipe: where Ray is and whether to continue an earlier run."""

    address: str | None = None
    resume: bool = False
    overrides: list[str] = field(default_factory=list)
    verbose: int = 1
    storage: str | None = None  # where Ray keeps experiment state and checkpoints (a shared folder or a URI)


class SearchInterrupted(SearchError):
    """The search stopped before all trials finished; what finished is exported and can be resumed."""

    exit_code = 130


def experiment_location(run_dir: Path, storage: str | None) -> tuple[str, str]:
    """(storage_path, experiment name) for Ray; the run directory itself unless ``storage`` is given."""
    if storage is None:
        return str(run_dir.resolve()), EXPERIMENT_DIR
    local = "://" not in storage
    base = str(Path(storage).expanduser().resolve()) if local else storage.rstrip("/")
    return base, f"{run_dir.resolve().name}-{EXPERIMENT_DIR}"


def experiment_path(run_dir: Path, storage: str | None) -> str:
    base, name = experiment_location(run_dir, storage)
    return f"{base}/{name}"


def study_storage(run_dir: Path) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(study_url(run_dir))


def load_study(run_dir: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=study_storage(run_dir))


QUIET_RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",  # no network here, and no telemetry by default
    "RAY_AIR_NEW_OUTPUT": "0",  # Ray's compact trial table instead of one box per trial and result
    # Keeping only the best checkpoint forces a state snapshot per checkpoint; that is intended.
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}


def start_ray(address: str | None):
    """Join the cluster at ``address`` or start a local Ray; return whether we started it."""
    for key, value in QUIET_RAY_ENV.items():
        os.environ.setdefault(key, value)
    import ray

    if ray.is_initialized():
        return False
    try:
        if address:
            ray.init(address=address, log_to_driver=True)
        else:
            ray.init(include_dashboard=False, log_to_driver=True)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        raise SearchError(f"Could not start or join {where}: {err}. Check --address "
                          f"(e.g. 127.0.0.1:6379 after `ray start --head`).") from None
    return True


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Ray for the duration of a stage: joined or started, and shut down on every exit if we started it."""
    started = start_ray(address)
    try:
        yield
    finally:
        if started:
            import ray

            ray.shutdown()


def check_resources(cpus_per_trial: float, gpus_per_trial: float) -> None:
    """A trial that asks for more than the cluster has would wait forever: say so at once."""
    import ray

    have = ray.cluster_resources()
    wants = (("CPU", "--cpus-per-trial", cpus_per_trial), ("GPU", "--gpus-per-trial", gpus_per_trial))
    for kind, flag, wanted in wants:
        if wanted > have.get(kind, 0):
            raise SearchError(f"Each trial asks for {wanted:g} {kind}(s) but the Ray cluster has "
                              f"{have.get(kind, 0):g}; lower it with {flag} (e.g. {flag} "
                              f"{'0' if kind == 'GPU' else '1'}).")


def default_concurrency(cpus_per_trial: float) -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_trial))


def build_tuner(recipe: Recipe, run_dir: Path, trainable, options: SearchOptions):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    budget = recipe.budget
    space = TrialSpace(recipe, options.overrides)
    sampler = (optuna.samplers.TPESampler(seed=recipe.seed) if budget.sampler == "tpe"
               else optuna.samplers.RandomSampler(seed=recipe.seed))
    searcher = OptunaSearch(space=space, metric=METRIC, mode=MODE, study_name=recipe.name,
                            storage=study_storage(run_dir), sampler=sampler)
    limit = budget.max_concurrent or default_concurrency(budget.cpus_per_trial)
    scheduler = None
    if budget.scheduler == "asha":
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=budget.max_epochs,
                                  grace_period=budget.grace_period, reduction_factor=budget.reduction_factor)
    storage_path, name = experiment_location(run_dir, options.storage)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, search_alg=ConcurrencyLimiter(searcher, limit),
                                    scheduler=scheduler, num_samples=budget.num_samples,
                                    time_budget_s=budget.time_budget_s, reuse_actors=True),
        run_config=tune.RunConfig(
            name=name, storage_path=storage_path, verbose=options.verbose,
            progress_reporter=progress_table(recipe),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=budget.max_failures),
        ),
    )


def progress_table(recipe: Recipe):
    """Ray's live table: a row per trial with the backbone, learning rate and accuracies."""
    from ray.tune import CLIReporter

    metrics = {"epoch": "epoch", "train_acc": "train_acc", "val_acc": "val_acc", METRIC: "best"}
    return CLIReporter(metric_columns=metrics, parameter_columns=["backbone", "lr"],
                       sort_by_metric=True, max_report_frequency=20, max_progress_rows=30,
                       total_samples=recipe.budget.num_samples)


def make_trainable(recipe: Recipe, data):
    from ray import tune

    resources = {"cpu": recipe.budget.cpus_per_trial, "gpu": recipe.budget.gpus_per_trial}
    # with_parameters puts the decoded arrays into Ray's object store once; trials map them zero-copy.
    trainable = tune.with_parameters(run_trial, data=data, threads=recipe.budget.cpus_per_trial,
                                     recipe_source=recipe.source, recipe_path=str(recipe.path))
    return tune.with_resources(trainable, resources)


def run_search(recipe: Recipe, run_dir: Path, options: SearchOptions) -> pd.DataFrame:
    """Run (or resume) the search and export its results into ``run_dir``; return the trials table.

    Raises SearchInterrupted (after exporting what finished) when trials remain unfinished.
    """
    from ray import tune

    start = time.perf_counter()
    experiment = experiment_path(run_dir, options.storage)
    restorable = tune.Tuner.can_restore(experiment)
    if restorable and not options.resume:
        raise SearchError(f"{str(run_dir)!r} already holds a search. Continue it with --resume, "
                          f"or choose a new --out folder.")
    if options.resume and not restorable:
        raise SearchError(f"Nothing to resume in {str(run_dir)!r}: no Ray experiment at {experiment}. "
                          f"Start the search without --resume.")
    validate_space(TrialSpace(recipe, options.overrides), recipe.data, seed=recipe.seed)
    record_run(run_dir, recipe.path, {**recipe.resolved(), "overrides": options.overrides,
                                      "storage": options.storage}, recipe.seed, recipe.source)
    data = prepare_trial_data(recipe.data, recipe.seed, run_dir)  # data problems surface before Ray starts
    with ray_session(options.address):
        check_resources(recipe.budget.cpus_per_trial, recipe.budget.gpus_per_trial)
        trainable = make_trainable(recipe, data)
        if restorable:
            tuner = tune.Tuner.restore(experiment, trainable, resume_unfinished=True, resume_errored=False,
                                       restart_errored=False)
        else:
            tuner = build_tuner(recipe, run_dir, trainable, options)
        tuner.fit()
    study = load_study(run_dir, recipe.name)
    trials = export_experiment(run_dir, experiment, study, recipe.budget)
    unfinished = int((trials["status"] == "incomplete").sum()) if len(trials) else 0
    cut_short = len(trials) < recipe.budget.num_samples and recipe.budget.time_budget_s is None
    if unfinished or cut_short:
        raise SearchInterrupted(f"The search stopped with {len(trials) - unfinished} of {recipe.budget.num_samples} "
                                f"trials finished; they are kept in {run_dir}. Continue with: "
                                f"hpsearch resume {run_dir}")
    close_orphaned_trials(study, set(trials["optuna_trial"].dropna().astype(int)))
    update_summary(run_dir, time.perf_counter() - start, trials, best_trial(trials))
    return trials


def close_orphaned_trials(study: optuna.Study, known: set[int]) -> list[int]:
    """Mark as failed the Optuna trials left RUNNING by a killed driver that no Ray trial carried on."""
    from optuna.trial import TrialState

    orphans = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
               if t.number not in known]
    for number in orphans:
        study.tell(number, state=TrialState.FAIL)
    return orphans


def best_trial(trials: pd.DataFrame) -> pd.Series:
    """The completed trial with the highest validation accuracy (lowest loss on ties)."""
    if "val_acc" not in trials:
        trials = trials.assign(val_acc=float("nan"))
    done = trials[(trials["status"] == "completed") & trials["val_acc"].notna()]
    if done.empty:
        reasons = trials.loc[trials["status"] == "failed", "error"].tolist() if "error" in trials else []
        first = f" First failure: {reasons[0]}" if reasons else ""
        raise SearchError(f"No trial finished successfully.{first} Rerun with --debug for the full traceback.")
    return rank_trials(done).iloc[0]
