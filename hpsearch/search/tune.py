"""``hpsearch tune``: Ray Tune + OptunaSearch (TPE, SQLite) + ASHA over a recipe's search space."""

from __future__ import annotations

import errno
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import pandas as pd

from hpsearch.data import prepare_split, prepare_trial_data
from hpsearch.errors import SearchError
from hpsearch.rundir import TRIALS_FILE, feasible, from_elsewhere, rank_trials, read_trials, study_url, update_summary
from hpsearch.runinfo import ensure_writable, record_run
from hpsearch.search.export import export_experiments
from hpsearch.search.pbt import ask_population, mutations, population_scheduler, settle_population
from hpsearch.search.plan import (
    SearchPlan,
    experiment_location,
    experiment_path,
    plan_search,
    repair_missing_checkpoints,
    workers_location,
)
from hpsearch.search.samplers import StratifiedStartup, make_sampler, sampler_seed, startup_trials, varying_ranges
from hpsearch.search.schedulers import make_scheduler
from hpsearch.search.searcher import PausingLimiter, Searcher
from hpsearch.search.session import check_resources, default_concurrency, ray_session, reap_leftover_ray
from hpsearch.search.space import TrialSpace, sampled_distributions, validate_space, widest_choice
from hpsearch.search.trainable import run_trial
from hpsearch.search.warmstart import (
    check_defaults,
    check_sources,
    enqueue_defaults,
    imported_trials,
    warm_start,
    write_rows,
)
from hpsearch.search.workers import ReleaseWorkerGroups, run_multiworker_trial

if TYPE_CHECKING:
    from hpsearch.recipe import Recipe

METRIC, MODE = "best_val_acc", "max"
# what the Tune trial of a multi-worker trial holds (Ray needs some resource): its Ray Train workers hold the CPUs
DRIVER_RESOURCES = {"cpu": 0, "memory": 2**20}
log = logging.getLogger(__name__)


@dataclass
class SearchOptions:
    """How to run a search, beyond the recipe: where Ray is and whether to continue an earlier run."""

    address: str | None = None
    resume: bool = False
    overrides: list[str] = field(default_factory=list)
    verbose: int = 1
    storage: str | None = None  # where Ray keeps experiment state and checkpoints (a shared folder or a URI)
    callbacks: list = field(default_factory=list)  # extra Ray Tune callbacks (e.g. a benchmark's clock)


class SearchInterrupted(SearchError):
    """The search stopped before all trials finished; what finished is exported and can be resumed."""

    exit_code = 130


def study_storage(run_dir: Path) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(study_url(run_dir))


def load_study(run_dir: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=study_storage(run_dir))


def build_tuner(recipe: Recipe, run_dir: Path, trainable, options: SearchOptions, number: int, num_samples: int):
    """A new Ray experiment (the run's ``number``-th) of ``num_samples`` trials, on the run's Optuna study."""
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    budget = recipe.budget
    space = TrialSpace(recipe, options.overrides)
    imported = imported_trials(load_study(run_dir, recipe.name)) if recipe.warm_start else 0
    seed = sampler_seed(recipe.seed, number, imported)
    limit = budget.max_concurrent or default_concurrency(budget.cpus_per_trial * budget.workers_per_trial)
    distributions = sampled_distributions(space, seed=recipe.seed)
    param_space = None
    if budget.scheduler == "pbt":
        population = initial_population(recipe, run_dir, space, seed, limit, num_samples)
        # every member sets every training option, so one key set holds them all; Ray runs exactly these
        param_space = dict.fromkeys(population[0])
        search_alg = BasicVariantGenerator(points_to_evaluate=population, max_concurrent=limit)
        scheduler = population_scheduler(budget, space, distributions)
    else:
        startup = startup_trials(budget.num_samples, widest_choice(distributions), budget.startup_trials)
        sampler = make_sampler(budget.sampler, seed, startup, limit)
        searcher = Searcher(space=space, metric=METRIC, mode=MODE, study_name=recipe.name,
                            storage=study_storage(run_dir), sampler=sampler, max_epochs=budget.max_epochs,
                            limits=budget.limits)
        exempt = sampler.n_startup if isinstance(sampler, StratifiedStartup) else 0  # as many as the sampler has
        search_alg, scheduler = PausingLimiter(searcher, limit), make_scheduler(budget, exempt)
    # PBT hands a trial the checkpoint another trial wrote at its last perturbation: keep that one
    keep = budget.interval + 2 if budget.scheduler == "pbt" else 1
    storage_path, name = experiment_location(run_dir, options.storage, number)
    if budget.workers_per_trial > 1:
        callbacks = [*options.callbacks, ReleaseWorkerGroups(workers_location(run_dir, options.storage))]
    else:
        callbacks = list(options.callbacks)
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, search_alg=search_alg, scheduler=scheduler,
                                    num_samples=num_samples, time_budget_s=budget.time_budget_s,
                                    # a multi-worker trial's driver owns its Ray Train workers: when Tune stops
                                    # the trial, ending the driver's process ends them too
                                    reuse_actors=budget.workers_per_trial == 1),
        run_config=tune.RunConfig(
            name=name, storage_path=storage_path, verbose=options.verbose, callbacks=callbacks or None,
            progress_reporter=progress_table(recipe),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=keep),
            failure_config=tune.FailureConfig(max_failures=budget.max_failures),
        ),
    )


def initial_population(recipe: Recipe, run_dir: Path, space: TrialSpace, seed: int, limit: int,
                       size: int) -> list[dict]:
    """PBT's initial population, asked from the run's study with the run's sampler, all of it start-up trials."""
    sampler = make_sampler(recipe.budget.sampler, seed, size, limit)
    study = optuna.create_study(storage=study_storage(run_dir), study_name=recipe.name, direction="maximize",
                                load_if_exists=True, sampler=sampler)
    return ask_population(study, space, size)


def progress_table(recipe: Recipe):
    """Ray's live table: a row per trial with the backbone, learning rate and accuracies. Not sorted by the
    metric: Ray's sort fails on trials that a time budget ended before their first result."""
    from ray.tune import CLIReporter

    metrics = {"epoch": "epoch", "train_acc": "train_acc", "val_acc": "val_acc", METRIC: "best"}
    return CLIReporter(metric_columns=metrics, parameter_columns=["backbone", "lr"],
                       sort_by_metric=False, max_report_frequency=20, max_progress_rows=30,
                       total_samples=recipe.budget.num_samples)


def make_trainable(recipe: Recipe, data, run_dir: Path, storage: str | None = None):
    """The trial function with its data and resources: one process per trial, or (``budget.workers_per_trial`` >
    1) a light driver whose Ray Train workers hold the CPUs and GPUs."""
    from ray import tune

    budget = recipe.budget
    shared = dict(data=data, threads=budget.cpus_per_trial, recipe_source=recipe.source,
                  recipe_path=str(recipe.path), limits=budget.limits)
    # with_parameters puts the trial data into Ray's object store once (a reference to the memory-mapped cache)
    if budget.workers_per_trial > 1:
        trainable = tune.with_parameters(run_multiworker_trial, workers=budget.workers_per_trial,
                                         gpus=budget.gpus_per_trial, storage=workers_location(run_dir, storage),
                                         **shared)
        return tune.with_resources(trainable, DRIVER_RESOURCES)
    trainable = tune.with_parameters(run_trial, **shared)
    return tune.with_resources(trainable, {"cpu": budget.cpus_per_trial, "gpu": budget.gpus_per_trial})


def check_search(recipe: Recipe, space: TrialSpace) -> None:
    """Everything about the recipe that can be checked before Ray starts: its space, defaults, warm-start
    sources and PBT's knobs raise a RecipeError; a range the sampler cannot model is logged as a warning."""
    validate_space(space, recipe.data, seed=recipe.seed)
    check_defaults(space, recipe.defaults)
    check_sources(recipe.warm_start)
    distributions = sampled_distributions(space, seed=recipe.seed)
    if recipe.budget.scheduler == "pbt":
        mutations(distributions)  # a space without PBT's knobs fails here
    else:
        for line in varying_ranges(recipe.budget.sampler, distributions):
            log.warning(line)


def run_search(recipe: Recipe, run_dir: Path, options: SearchOptions) -> pd.DataFrame:
    """Run, resume or extend the search and export its results into ``run_dir``; return the trials table.

    Raises SearchInterrupted (after exporting what finished) when trials remain unfinished.
    """
    start = time.perf_counter()
    if options.resume:
        reap_leftover_ray(run_dir)
    plan = plan_search(run_dir, recipe, options.resume, options.storage)
    if plan.idle:
        trials = read_trials(run_dir)
        log.info("Nothing to resume in %s: its %d trials are finished. Add more with `hpsearch resume %s "
                 "--num-samples N`.", run_dir, len(trials), run_dir)
        return trials
    space = TrialSpace(recipe, options.overrides)
    check_search(recipe, space)
    ensure_writable(run_dir)
    data = prepare_trial_data(recipe.data, recipe.seed, run_dir, save=False)  # data problems surface first
    try:
        with ray_session(options.address, run_dir):
            check_resources(recipe.budget.cpus_per_trial, recipe.budget.gpus_per_trial, recipe.budget.workers_per_trial)
            # nothing is written into the run directory before Ray is up: a failed start leaves it reusable
            record_run(run_dir, recipe.path, {**recipe.resolved(), "overrides": options.overrides,
                                              "storage": options.storage, "experiments": plan.experiments},
                       recipe.seed, recipe.source, resumed=options.resume, changes=plan.changes)
            prepare_split(recipe.data, recipe.seed, run_dir)
            if plan.start is not None:
                prepare_study(recipe, run_dir, space)
            run_plan(plan, recipe, run_dir, make_trainable(recipe, data, run_dir, options.storage), options)
        trials = export(run_dir, recipe, plan, options)
    except Exception as err:
        if not is_disk_full(err, run_dir):
            raise
        raise SearchError(f"The disk holding {run_dir} is full ({free_mib(run_dir):.0f} MiB free; "
                          f"{type(err).__name__}: {err}). {salvage(run_dir, recipe, plan, options)} Free some space, "
                          f"then continue with `hpsearch resume {run_dir}`.") from None
    study = load_study(run_dir, recipe.name)
    settle_population(study, trials)
    own = trials[~from_elsewhere(trials)] if len(trials) else trials
    unfinished = int((own["status"] == "incomplete").sum()) if len(own) else 0
    cut_short = len(own) < recipe.budget.num_samples and recipe.budget.time_budget_s is None
    if unfinished or cut_short:
        raise SearchInterrupted(f"The search stopped with {len(own) - unfinished} of {recipe.budget.num_samples} "
                                f"trials finished; they are kept in {run_dir}. Continue with: "
                                f"hpsearch resume {run_dir}")
    close_orphaned_trials(study, set(trials["optuna_trial"].dropna().astype(int)))
    update_summary(run_dir, time.perf_counter() - start, trials, best_trial(trials))
    return trials


def prepare_study(recipe: Recipe, run_dir: Path, space: TrialSpace) -> optuna.Study:
    """The run's study, with the earlier runs' trials (``warm_start``) and the recipe's ``defaults`` in it
    before the first trial is asked (both only once per study)."""
    study = optuna.create_study(storage=study_storage(run_dir), study_name=recipe.name, direction="maximize",
                                load_if_exists=True)
    if recipe.warm_start:
        write_rows(run_dir, warm_start(study, space, recipe.warm_start, recipe.budget).rows)
    if recipe.defaults:  # under PBT they become members of the initial population
        enqueue_defaults(study, recipe.defaults)
    return study


def export(run_dir: Path, recipe: Recipe, plan: SearchPlan, options: SearchOptions) -> pd.DataFrame:
    study = load_study(run_dir, recipe.name)
    return export_experiments(run_dir, plan.paths(run_dir, options.storage), study, recipe.budget)


def free_mib(run_dir: Path) -> float:
    return shutil.disk_usage(run_dir).free / 2**20


def is_disk_full(err: BaseException, run_dir: Path) -> bool:
    """ENOSPC anywhere, or any failure (Ray wraps its own) while the run's disk has under 64 MiB left."""
    return getattr(err, "errno", None) == errno.ENOSPC or free_mib(run_dir) < 64


def salvage(run_dir: Path, recipe: Recipe, plan: SearchPlan, options: SearchOptions) -> str:
    """Export what finished, if the disk still allows it; say how that went."""
    try:
        trials = export(run_dir, recipe, plan, options)
    except Exception:  # noqa: BLE001  a full disk can break the export in any way
        return "What finished could not be exported either; it stays in Ray's folder."
    return f"{int((trials['status'] == 'completed').sum())} finished trial(s) were exported to {TRIALS_FILE}."


def run_plan(plan: SearchPlan, recipe: Recipe, run_dir: Path, trainable, options: SearchOptions) -> None:
    """Finish the unfinished experiment, then start the new one (unless the first was interrupted again)."""
    from ray import tune

    if plan.restore is not None:
        path = experiment_path(run_dir, options.storage, plan.restore)
        repair_missing_checkpoints(path)
        tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=False,
                           restart_errored=False).fit()
        if unfinished_trials(path):
            return
    if plan.start is not None:
        count = next(e["num_samples"] for e in plan.experiments if e["number"] == plan.start)
        build_tuner(recipe, run_dir, trainable, options, plan.start, count).fit()


def unfinished_trials(experiment: str) -> int:
    from ray.tune import ExperimentAnalysis

    return sum(t.status not in ("TERMINATED", "ERROR") for t in ExperimentAnalysis(experiment).trials)


def close_orphaned_trials(study: optuna.Study, known: set[int]) -> list[int]:
    """Mark as failed the Optuna trials left RUNNING by a killed driver that no Ray trial carried on."""
    from optuna.trial import TrialState

    orphans = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
               if t.number not in known]
    for number in orphans:
        study.tell(number, state=TrialState.FAIL)
    return orphans


def best_trial(trials: pd.DataFrame) -> pd.Series:
    """This run's completed trial that ranks first (``rank_trials``: feasible, then the highest validation
    accuracy, then the lowest loss); trials brought in by a warm start have no model here and never count."""
    if "val_acc" not in trials:
        trials = trials.assign(val_acc=float("nan"))
    done = trials[(trials["status"] == "completed") & trials["val_acc"].notna() & ~from_elsewhere(trials)]
    if done.empty:
        reasons = trials.loc[trials["status"] == "failed", "error"].tolist() if "error" in trials else []
        first = f" First failure: {reasons[0]}" if reasons else ""
        raise SearchError(f"No trial finished successfully.{first} Rerun with --debug for the full traceback.")
    best = rank_trials(done).iloc[0]
    if not feasible(best.to_frame().T).iloc[0]:
        log.warning("No trial met the deployment bounds (budget.max_ms_per_image / max_params); the best trial "
                    "%s exceeds them. Loosen the bounds or search smaller backbones.", best["trial_id"])
    return best
