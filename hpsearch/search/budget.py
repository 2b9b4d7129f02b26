"""The ``budget`` section of a recipe: how many trials, how long, how parallel, and what a trial may cost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hpsearch.errors import RecipeError

Sampler = Literal["tpe", "gp", "random", "cmaes"]
Scheduler = Literal["asha", "hyperband", "pbt", "median", "fifo"]


@dataclass(frozen=True)
class BudgetConfig:
    """Search size and scheduling (the recipe's ``budget`` section); each field's docstring says what it does."""

    num_samples: int = 16
    """Trials to run (fewer if ``time_budget_s`` runs out first)."""
    max_epochs: int = 20
    """Epochs per trial at most."""
    grace_period: int | None = None
    """Epochs every trial gets before ASHA may stop it (``None``: a third of ``max_epochs``, at least 2); 2 or more
    from scratch (first-epoch BatchNorm scores are noise), 1 suits short fine-tuning runs. Early epochs of a
    schedule that decays over ``max_epochs`` favour low learning rates, so an early first rung cuts the configurations
    that end best (``results/benchmarks/search_simulation*.md``)."""
    reduction_factor: int = 3
    """ASHA keeps the best 1/reduction_factor of the trials at each rung."""
    max_concurrent: int | None = None
    """Trials at once (``None``: as many as the cluster's CPUs allow)."""
    cpus_per_trial: float = 1.0
    """CPUs per trial, also its torch threads (per worker when ``workers_per_trial`` > 1)."""
    gpus_per_trial: float = 0.0
    """GPUs per trial; fractions share a GPU (0.5: two trials per GPU); per worker when ``workers_per_trial`` > 1."""
    workers_per_trial: int = 1
    """Processes per trial: more than 1 trains each trial data-parallel (DDP) on that many Ray Train workers, each
    with ``cpus_per_trial`` CPUs and ``gpus_per_trial`` GPUs, on slices of every batch (``train.batch_size`` is
    the global batch)."""
    max_failures: int = 0
    """Retries of a crashed trial."""
    sampler: Sampler = "tpe"
    """Optuna's sampler: ``tpe`` (multivariate TPE), ``gp`` (Gaussian process), ``cmaes``, or ``random`` (the
    naive baseline); all but ``random`` start with ``startup_trials`` stratified trials that cover every choice."""
    scheduler: Scheduler = "asha"
    """``asha``, ``hyperband`` or ``median`` stop weak trials early; ``pbt`` (population-based training) continues
    the bottom quarter from a top trial's checkpoint with perturbed lr, weight decay, augmentation and mixup;
    ``fifo`` runs every trial to the end. Hyperband's brackets stop many trials after an epoch or two, where scores
    are noisiest: in the search simulation a lucky early epoch often became the best trial (its configuration
    worth 0.705 against 0.736 for random search's, ``results/benchmarks/search_simulation.md``)."""
    startup_trials: int | None = None
    """Stratified start-up trials before the sampler's model (``None``: a quarter of ``num_samples``, raised to
    the widest categorical choice, at most 10). ASHA and the median rule never stop them early, so that the model
    judges every choice by a whole run."""
    perturbation_interval: int | None = None
    """PBT: epochs between exploit/explore steps (``None``: the grace period, at most ``max_epochs - 1``)."""
    time_budget_s: float | None = None
    """End the search after this many seconds, whatever the trial count (Ray Tune's ``time_budget_s``); running
    trials stop and what finished is exported (a trial whose last checkpoint Ray had not yet registered, from the
    checkpoint it wrote)."""
    max_ms_per_image: float | None = None
    """Deployment bound: milliseconds per image at batch 1 on the trial's device; slower trials are infeasible."""
    max_params: float | None = None
    """Deployment bound: parameters at most; larger models are infeasible."""

    def validate(self) -> None:
        if self.num_samples < 1:
            raise RecipeError(f"budget.num_samples must be at least 1, but got {self.num_samples=}.")
        if self.max_epochs < 1:
            raise RecipeError(f"budget.max_epochs must be at least 1, but got {self.max_epochs=}.")
        if self.grace_period is not None and not 1 <= self.grace_period <= self.max_epochs:
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
        if self.workers_per_trial < 1:
            raise RecipeError(f"budget.workers_per_trial must be at least 1, but got {self.workers_per_trial=}.")
        if self.workers_per_trial > 1 and self.scheduler == "pbt":
            raise RecipeError(f"budget.scheduler='pbt' does not support multi-worker trials "
                              f"({self.workers_per_trial=}); use scheduler='asha' (or 'hyperband', 'median', 'fifo'), "
                              f"or workers_per_trial=1.")
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
    def grace_epochs(self) -> int:
        """The epochs before ASHA's first rung: ``grace_period``, or a third of ``max_epochs`` (at least 2)."""
        if self.grace_period is not None:
            return self.grace_period
        return min(self.max_epochs, max(2, self.max_epochs // 3))

    @property
    def interval(self) -> int:
        """PBT's perturbation interval in epochs."""
        return self.perturbation_interval or min(self.grace_epochs, self.max_epochs - 1)
