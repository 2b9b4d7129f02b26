"""The ``budget`` section of a recipe: how many trials, how long, how parallel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hpsearch.errors import RecipeError


@dataclass(frozen=True)
class BudgetConfig:
    """Search size and scheduling.

    ``grace_period``: epochs every trial gets before ASHA may stop it (at least 2: first-epoch
    validation scores of BatchNorm models are noise). ``max_concurrent``: trials at once
    (``None``: as many as the cluster's CPUs allow). ``max_failures``: retries of a crashed trial.
    ``sampler="random"`` and ``scheduler="fifo"`` (no early stopping) give the naive baseline;
    ``time_budget_s`` ends the search after that many seconds, whatever the trial count.
    """

    num_samples: int = 16
    max_epochs: int = 20
    grace_period: int = 2
    reduction_factor: int = 3
    max_concurrent: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_failures: int = 0
    sampler: Literal["tpe", "random"] = "tpe"
    scheduler: Literal["asha", "fifo"] = "asha"
    time_budget_s: float | None = None

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
