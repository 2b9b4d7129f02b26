"""The ``budget`` section of a recipe: how many trials, how long, how parallel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hpsearch.errors import RecipeError


@dataclass(frozen=True)
class BudgetConfig:
    """Search size and scheduling (the recipe's ``budget`` section)."""

    num_samples: int = 16
    """Trials to run (fewer if ``time_budget_s`` runs out first)."""
    max_epochs: int = 20
    """Epochs per trial at most."""
    grace_period: int = 2
    """Epochs every trial gets before ASHA may stop it; 2 or more from scratch (first-epoch BatchNorm scores are
    noise), 1 suits short fine-tuning runs."""
    reduction_factor: int = 3
    """ASHA keeps the best 1/reduction_factor of the trials at each rung."""
    max_concurrent: int | None = None
    """Trials at once (``None``: as many as the cluster's CPUs allow)."""
    cpus_per_trial: float = 1.0
    """CPUs per trial, also its torch threads."""
    gpus_per_trial: float = 0.0
    """GPUs per trial; fractions share a GPU (0.5: two trials per GPU)."""
    max_failures: int = 0
    """Retries of a crashed trial."""
    sampler: Literal["tpe", "random"] = "tpe"
    """Optuna's sampler: ``tpe``, or ``random`` (the naive baseline)."""
    scheduler: Literal["asha", "fifo"] = "asha"
    """``asha`` stops weak trials early; ``fifo`` runs every trial to the end."""
    time_budget_s: float | None = None
    """End the search after this many seconds, whatever the trial count (Ray Tune's ``time_budget_s``); running
    trials stop and what finished is exported."""

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
