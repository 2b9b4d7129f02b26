"""Warm starts: what the study knows before its first trial.

- ``--warm-start RUN_DIR ...`` (or ``warm_start = [...]`` in the recipe) adds the finished trials of earlier
  runs to the new study with Optuna's ``add_trial``, each with the distributions the *new* space gives it
  (found by running the recipe's space on the trial's parameters). A trial whose parameters the new space does
  not produce (a parameter it does not sample, a value outside its range, a choice it does not offer) is
  skipped and counted. Trials a scheduler stopped early enter as PRUNED with their learning curve, like the
  search's own; under deployment bounds, a trial without measured costs is skipped. Their rows go to
  ``trials.csv`` with ``origin = "warm_start:<run>"``: they are never trained again, and have no model here.
- ``defaults = [dict(...), ...]`` in a recipe are known-good configurations: enqueued, they are the first
  trials (any parameter a default leaves out is sampled), and ``trials.csv`` marks them ``origin = "default"``.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from hpsearch.errors import HpsearchError, RecipeError
from hpsearch.rundir import (
    ORIGIN_WARM_START,
    STUDY_FILE,
    TRIAL_KEY_COLUMNS,
    TRIAL_RESULT_COLUMNS,
    TRIALS_FILE,
    RunDir,
    from_elsewhere,
    parameter_columns,
    read_history,
    read_trials,
    study_url,
    write_table,
)
from hpsearch.search.budget import BudgetConfig
from hpsearch.search.space import TrialSpace, run_space

FINISHED = ("max_epochs", "patience")  # stop reasons of trials that ran their course (the rest enter as PRUNED)
log = logging.getLogger(__name__)


@dataclass
class WarmStart:
    """What a warm start added to the study (and to trials.csv), and what it skipped, by reason."""

    added: int = 0
    skipped: Counter = field(default_factory=Counter)
    rows: list[dict[str, Any]] = field(default_factory=list)


def plain(value: Any) -> Any:
    """A value read from CSV as a plain Python value (numpy scalars become int, float, bool)."""
    return value.item() if isinstance(value, np.generic) else value


def sampled_names(run: RunDir) -> dict[int, list[str]]:
    """Optuna trial number -> the parameters its sampler chose, from the run's study (empty without one)."""
    if not (run.path / STUDY_FILE).is_file():  # connecting would create an empty study.db in the source run
        return {}
    try:
        study = optuna.load_study(study_name=run.name, storage=study_url(run.path))
    except Exception:  # noqa: BLE001  no study or an unreadable one: fall back to trials.csv's columns
        return {}
    return {t.number: list(t.params) for t in study.get_trials(deepcopy=False)}


def curve(history: pd.DataFrame | None, trial_id: str, row: pd.Series) -> dict[int, float]:
    """The trial's best-so-far validation accuracy per epoch (its last epoch only, without a history)."""
    if history is not None and "best_val_acc" in history:
        rows = history[history["trial_id"] == trial_id].dropna(subset=["best_val_acc"])
        if len(rows):
            return {int(e): float(v) for e, v in zip(rows["epoch"], rows["best_val_acc"], strict=True)}
    return {int(row.get("epochs") or 1): float(row["val_acc"])}


def as_trial(space: TrialSpace, params: dict[str, Any], row: pd.Series, values: dict[int, float],
             constraints: dict[str, float] | None, source: str) -> optuna.trial.FrozenTrial:
    """The earlier trial as a FrozenTrial of the new space; ValueError says why it is outside it."""
    fixed = optuna.trial.FixedTrial(params)
    try:
        with warnings.catch_warnings():  # an out-of-range value is reported below, not warned about
            warnings.simplefilter("ignore")
            run_space(space, fixed)
    except RecipeError as err:
        raise ValueError("a parameter the new space needs is missing") from err
    unused = set(params) - set(fixed.params)
    if unused:
        raise ValueError("a parameter the new space does not sample")
    finished = str(row.get("stop_reason")) in FINISHED
    try:
        return optuna.trial.create_trial(
            state=TrialState.COMPLETE if finished else TrialState.PRUNED, value=float(row["val_acc"]),
            params=fixed.params, distributions=fixed.distributions, intermediate_values=values,
            user_attrs={"origin": ORIGIN_WARM_START, "source_run": source, "source_trial": str(row["trial_id"])},
            constraints=constraints)
    except ValueError as err:
        raise ValueError("a value outside the new space's ranges") from err


def constraints_of(row: pd.Series, budget: BudgetConfig) -> dict[str, float] | None:
    """Optuna constraints of an earlier trial under this budget's bounds; ValueError if a cost is missing."""
    if not budget.limits:
        return None
    missing = [key for key in budget.limits if pd.isna(row.get(key))]
    if missing:
        raise ValueError("no measured cost to check against the bounds")
    return {key: float(row[key]) - bound for key, bound in budget.limits.items()}


def add_run(study: optuna.Study, space: TrialSpace, source: Path, budget: BudgetConfig, result: WarmStart) -> None:
    """Add the finished trials of the run in ``source`` to ``study``."""
    run = RunDir(source)
    trials = run.trials
    done = trials[(trials["status"] == "completed") & trials["val_acc"].notna() & ~from_elsewhere(trials)]
    names, columns = sampled_names(run), parameter_columns(trials)
    history = read_history(source, missing_ok=True)
    for _, row in done.iterrows():
        number = row.get("optuna_trial")
        keys = names.get(int(number), columns) if pd.notna(number) else columns
        params = {k: plain(row[k]) for k in keys if k in row and pd.notna(row[k])}
        try:
            trial = as_trial(space, params, row, curve(history, str(row["trial_id"]), row),
                             constraints_of(row, budget), str(source))
        except ValueError as err:
            result.skipped[str(err)] += 1
            continue
        study.add_trial(trial)
        result.added += 1
        result.rows.append(imported_row(row, study.get_trials(deepcopy=False)[-1].number, source, budget))


def imported_row(row: pd.Series, number: int, source: Path, budget: BudgetConfig) -> dict[str, Any]:
    """The earlier trial's row of trials.csv as this run keeps it: its new Optuna number, no model here."""
    values = {k: plain(v) for k, v in row.items() if pd.notna(v)}
    costs = {k: values.get(k) for k in budget.limits}
    values.update(optuna_trial=number, origin=f"{ORIGIN_WARM_START}:{source}", checkpoint=False,
                  feasible=budget.within_limits(costs) if budget.limits else True)
    return values


def check_sources(sources: list[str]) -> None:
    """Every warm-start folder is a finished run (checked before the search starts)."""
    for source in sources:
        if not (Path(source).expanduser() / TRIALS_FILE).is_file():
            raise HpsearchError(f"--warm-start {source}: not a finished hpsearch run (no {TRIALS_FILE}); give the "
                                f"folder of an earlier `hpsearch tune`.")


def imported_trials(study: optuna.Study) -> int:
    """How many trials of earlier runs a warm start added to ``study``."""
    return sum(t.user_attrs.get("origin") == ORIGIN_WARM_START for t in study.get_trials(deepcopy=False))


def warm_start(study: optuna.Study, space: TrialSpace, sources: list[str], budget: BudgetConfig) -> WarmStart:
    """Add every source run's finished trials to ``study`` (once: a study that has them already is left alone)."""
    result = WarmStart()
    if imported_trials(study):
        return result
    check_sources(sources)
    for source in sources:
        add_run(study, space, Path(source).expanduser().resolve(), budget, result)
    skipped = sum(result.skipped.values())
    log.info("Warm start: added %d finished trial(s) of %d earlier run(s) to the study; skipped %d outside the new "
             "space%s.", result.added, len(sources), skipped,
             f" ({', '.join(f'{n}: {why}' for why, n in result.skipped.items())})" if skipped else "")
    return result


def write_rows(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Add imported rows to ``run_dir/trials.csv`` (the export keeps rows no Ray experiment holds)."""
    if not rows:
        return
    table = pd.DataFrame(rows)
    if (run_dir / TRIALS_FILE).is_file():
        earlier = read_trials(run_dir)
        table = pd.concat([earlier, table[~table["trial_id"].isin(earlier["trial_id"])]], ignore_index=True)
    params = parameter_columns(table)
    results = [c for c in TRIAL_RESULT_COLUMNS if c in table]
    write_table(run_dir / TRIALS_FILE, table[[*TRIAL_KEY_COLUMNS, *params, *results]])


def check_defaults(space: TrialSpace, defaults: list[dict[str, Any]]) -> None:
    """Every default names parameters the space samples for that configuration, with values inside their ranges."""
    for index, default in enumerate(defaults):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        study.enqueue_trial(default)
        trial = study.ask()
        with warnings.catch_warnings():  # out-of-range values are reported below
            warnings.simplefilter("ignore")
            run_space(space, trial)
        unused = sorted(set(default) - set(trial.params))
        if unused:
            raise RecipeError(f"defaults[{index}] sets {unused}, which the recipe's space does not sample for that "
                              f"configuration (it samples {sorted(trial.params)}).")
        for name, value in default.items():
            try:
                optuna.trial.create_trial(value=0.0, params={name: value},
                                          distributions={name: trial.distributions[name]})
            except ValueError:
                raise RecipeError(f"defaults[{index}] sets {name}={value!r}, outside the space's "
                                  f"{trial.distributions[name]}.") from None


def enqueue_defaults(study: optuna.Study, defaults: list[dict[str, Any]]) -> int:
    """Enqueue the recipe's defaults (each once per study); return how many were new."""
    before = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    for default in defaults:
        study.enqueue_trial(default, skip_if_exists=True)
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))) - before
