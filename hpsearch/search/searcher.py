"""Ray Tune's OptunaSearch, telling Optuna how each trial really ended.

Ray's OptunaSearch tells Optuna every trial as COMPLETE with its last score, so a trial that ASHA stopped
after two epochs looks to TPE like a finished trial that is simply bad. ``Searcher`` tells such a trial (one
that a scheduler, the time budget or an infeasible cost stopped before ``max_epochs``) as PRUNED, with its
learning curve up to its last epoch as intermediate values. That is Optuna's own model of early stopping:
TPE ranks pruned trials below every finished one and, among themselves, by how far they got and then by their
last score; CMA-ES (``consider_pruned_trials``) uses their last score; the GP sampler and fANOVA importance
use finished trials only. Trials stopped by their own patience did finish their run, and stay COMPLETE.

The measured inference cost of each trial (``parameters``, ``ms_per_image``) is stored as user attributes,
and under ``budget.max_ms_per_image`` / ``max_params`` as Optuna constraints (``Trial.set_constraint``, which
Optuna 5 reads in TPE and GP, and which replaces the deprecated ``constraints_func``).
"""

from __future__ import annotations

from typing import Any

from optuna.trial import TrialState
from ray.air.constants import TRAINING_ITERATION
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from hpsearch.rundir import COST_COLUMNS


def ended_early(result: dict[str, Any], max_epochs: int) -> bool:
    """The trial stopped before ``max_epochs`` for a reason other than its own patience."""
    return int(result.get("epoch", max_epochs)) < max_epochs and not result.get("stopped_by_patience")


def constraint_values(result: dict[str, Any], limits: dict[str, float]) -> dict[str, float]:
    """Optuna constraints (feasible: <= 0): measured cost minus its bound, for every bound that was measured."""
    return {key: float(result[key]) - bound for key, bound in limits.items() if result.get(key) is not None}


class Searcher(OptunaSearch):
    """OptunaSearch with PRUNED trials for early stops, and costs and constraints recorded on each trial.

    ``limits`` maps a cost (``ms_per_image``, ``parameters``) to its upper bound.
    """

    KEPT = ("epoch", "stopped_by_patience", TRAINING_ITERATION, *COST_COLUMNS)  # of each trial's latest result

    def __init__(self, *args, max_epochs: int, limits: dict[str, float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_epochs = max_epochs
        self.limits = dict(limits or {})
        self.latest: dict[str, dict[str, Any]] = {}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        super().on_trial_result(trial_id, result)
        self.latest[trial_id] = {k: result[k] for k in (*self.KEPT, self.metric) if k in result}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        trial = self._ot_trials.get(trial_id)
        reported = not result  # a trial stopped while paused (Hyperband) comes without its last result...
        result = result or self.latest.get(trial_id)  # ...which it reported before
        self.latest.pop(trial_id, None)
        if trial is None or trial_id in self._completed_trials or error or not result:
            return super().on_trial_complete(trial_id, None if reported else result, error)
        for key in COST_COLUMNS:
            if result.get(key) is not None:
                trial.set_user_attr(key, float(result[key]))
        for key, value in constraint_values(result, self.limits).items():
            trial.set_constraint(key, value)
        value = result.get(self.metric)
        if value is None or not ended_early(result, self.max_epochs):
            return super().on_trial_complete(trial_id, result, error)
        if not reported:
            trial.report(float(value), int(result.get(TRAINING_ITERATION, result.get("epoch", 0))))
        self._ot_study.tell(trial, state=TrialState.PRUNED)
        self._completed_trials.add(trial_id)

    def on_pause(self, trial_id: str) -> None:
        """Hyperband pauses trials between rungs; nothing to tell Optuna."""

    def on_unpause(self, trial_id: str) -> None:
        """See ``on_pause``."""


class PausingLimiter(ConcurrencyLimiter):
    """Ray's ConcurrencyLimiter, except that a trial the scheduler paused (Hyperband, between rungs) frees its
    slot until it resumes; with the plain limiter, paused trials fill every slot and the bracket never fills."""

    def __init__(self, searcher: Searcher, max_concurrent: int):
        super().__init__(searcher, max_concurrent)
        self.paused: set[str] = set()

    def on_pause(self, trial_id: str) -> None:
        if trial_id in self.live_trials:
            self.live_trials.remove(trial_id)
            self.num_unfinished_live_trials -= 1
            self.paused.add(trial_id)
        super().on_pause(trial_id)

    def on_unpause(self, trial_id: str) -> None:
        if trial_id in self.paused:
            self.paused.remove(trial_id)
            self.live_trials.add(trial_id)
            self.num_unfinished_live_trials += 1
        super().on_unpause(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self.paused:  # stopped while paused: it holds no slot
            self.paused.remove(trial_id)
            self.searcher.on_trial_complete(trial_id, result=result, error=error)
            return
        super().on_trial_complete(trial_id, result, error)
