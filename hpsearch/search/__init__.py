"""The search: Ray Tune runs trials, Optuna samples them, ASHA stops the weak ones early."""

from hpsearch.search.budget import BudgetConfig

__all__ = ["BudgetConfig"]
