"""The ``budget`` section of a recipe: how many trials, how long, how parallel, and what a trial may cost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hpsearch.errors import RecipeError

Sampler = Literal["tpe", "gp", "random", "cmaes"]
Scheduler = Literal["asha", "hyperband", "pbt", "median", "fifo"]


@dataclass(frozen=True)
class BudgetConfig:
    """Search size and scheduling.

    ``grace_period``: epochs every trial gets before ASHA, Hyperband or the median rule may stop it (at least
    2 from scratch: first-epoch validation scores of BatchNorm models are noise). ``max_concurrent``: trials at
    once (``None``: as many as the cluster's CPUs allow). ``max_failures``: retries of a crashed trial.
    ``sampler``: ``tpe`` (multivariate TPE), ``gp`` (Optuna's Gaussian process), ``cmaes`` or ``random``; all
    but ``random`` start with ``startup_trials`` stratified trials that cover every choice (``None``: a quarter
    of ``num_samples``, raised to the widest categorical choice, at most 10). ``scheduler``: ``asha``,
    ``hyperband``, ``median`` (stop a trial below the median of the others at the same epoch), ``pbt``
    (population-based training: every ``perturbation_interval`` epochs, default ``grace_period``, the bottom
    quarter continues from a top trial's checkpoint with perturbed lr, weight decay, augmentation and mixup) or
    ``fifo`` (no early stopping). ``sampler="random"`` with ``scheduler="fifo"`` is the naive baseline.
    ``time_budget_s`` ends the search after that many seconds, whatever the trial count.
    ``max_ms_per_image`` (inference latency at batch 1 on the trial's device) and ``max_params`` make a trial
    that exceeds them infeasible: the sampler learns to avoid them and the best trial is the best feasible one.
    """

    num_samples: int = 16
    max_epochs: int = 20
    grace_period: int = 2
    reduction_factor: int = 3
    max_concurrent: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_failures: int = 0
    sampler: Sampler = "tpe"
    scheduler: Scheduler = "asha"
    startup_trials: int | None = None
    perturbation_interval: int | None = None
    time_budget_s: float | None = None
    max_ms_per_image: float | None = None
    max_params: float | None = None

    def validate(self) -> None:
        if self.num_samples < 1:
            raise RecipeError(f"budget.num_samples must be at least 1, but got {self.num_samples=}.")
        if self.max_epochs < 1:
            raise RecipeError(f"budget.max_epochs must be at least 1, but got {self.max_epochs=}.")
        if not 1 <= self.grace_period <= self.max_epochs:
            raise RecipeError(f"budget.grace_period must be between 1 and max_epochs ({self.max_epochs}), "
                              f"but got {self.grace_period=}.")
        if self.reduction_factor < 2:
            raise RecipeError(f"budget.reduction_factor must be at least 2, but got {self.reduction_factor=}.")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise RecipeError(f"budget.max_concurrent must be at least 1, but got {self.max_concurrent=}.")
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise RecipeError(f"budget.cpus_per_trial must be > 0 and gpus_per_trial >= 0, but got "
                              f"{self.cpus_per_trial=}, {self.gpus_per_trial=}.")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise RecipeError(f"budget.time_budget_s must be positive, but got {self.time_budget_s=}.")
        if self.max_failures < 0:
            raise RecipeError(f"budget.max_failures must be >= 0, but got {self.max_failures=}.")
        self._validate_new_knobs()

    def _validate_new_knobs(self) -> None:
        if self.startup_trials is not None and not 0 <= self.startup_trials <= self.num_samples:
            raise RecipeError(f"budget.startup_trials must be between 0 and num_samples ({self.num_samples}), "
                              f"but got {self.startup_trials=}.")
        if self.perturbation_interval is not None and not 1 <= self.perturbation_interval < self.max_epochs:
            raise RecipeError(f"budget.perturbation_interval must be between 1 and max_epochs - 1 "
                              f"({self.max_epochs - 1}), but got {self.perturbation_interval=}.")
        if self.scheduler == "pbt" and self.max_epochs < 2:
            raise RecipeError(f"budget.scheduler='pbt' needs budget.max_epochs >= 2 (PBT perturbs between epochs), "
                              f"but got {self.max_epochs=}.")
        if self.max_ms_per_image is not None and self.max_ms_per_image <= 0:
            raise RecipeError(f"budget.max_ms_per_image must be positive, but got {self.max_ms_per_image=}.")
        if self.max_params is not None and self.max_params < 1:
            raise RecipeError(f"budget.max_params must be at least 1, but got {self.max_params=}.")

    @property
    def limits(self) -> dict[str, float]:
        """Deployment bounds by the cost they bound (names of trials.csv's cost columns)."""
        bounds = {"ms_per_image": self.max_ms_per_image, "parameters": self.max_params}
        return {key: float(bound) for key, bound in bounds.items() if bound is not None}

    def within_limits(self, costs: dict) -> bool | None:
        """Whether measured ``costs`` meet every bound (None: a bounded cost was not measured)."""
        values = [costs.get(key) for key in self.limits]
        if any(value is None or value != value for value in values):
            return None
        return all(float(value) <= bound for value, bound in zip(values, self.limits.values(), strict=True))

    @property
    def interval(self) -> int:
        """PBT's perturbation interval in epochs."""
        return self.perturbation_interval or min(self.grace_period, self.max_epochs - 1)
