"""Ray Tune trial schedulers by name: when a trial stops early (or, for PBT, what it continues from).

Every scheduler counts time in epochs (``time_attr="epoch"``), so rungs and intervals are whole epochs and a
trial that resumes from its checkpoint keeps its place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ray.tune.schedulers import ASHAScheduler, HyperBandForBOHB, MedianStoppingRule

from hpsearch.errors import RecipeError

if TYPE_CHECKING:
    from hpsearch.search.budget import BudgetConfig

SCHEDULERS = ("asha", "hyperband", "pbt", "median", "fifo")


def make_scheduler(budget: BudgetConfig):
    """The scheduler of ``budget.scheduler`` (``None`` for ``fifo``: every trial runs until it ends itself).

    ``hyperband`` is Ray's ``HyperBandForBOHB``: Hyperband brackets without pipelining, which pause trials at a
    rung even before the bracket is full, so it works with a limited number of concurrent trials (together with
    ``PausingLimiter``). ``pbt`` is built by ``hpsearch.search.pbt``, which also samples its population.
    """
    if budget.scheduler == "asha":
        return ASHAScheduler(time_attr="epoch", max_t=budget.max_epochs, grace_period=budget.grace_epochs,
                             reduction_factor=budget.reduction_factor)
    if budget.scheduler == "hyperband":
        return Hyperband(time_attr="epoch", max_t=budget.max_epochs, reduction_factor=budget.reduction_factor)
    if budget.scheduler == "median":
        return MedianStoppingRule(time_attr="epoch", grace_period=budget.grace_epochs, min_samples_required=3)
    if budget.scheduler == "fifo":
        return None
    raise RecipeError(f"budget.scheduler must be one of {list(SCHEDULERS)}, but got {budget.scheduler!r}; "
                      f"'pbt' is built by hpsearch.search.pbt.")



class Hyperband(HyperBandForBOHB):
    """Ray's HyperBandForBOHB, recording the trials it stops while they are paused.

    Ray (2.60) stops a paused trial without marking it for the experiment's saved state, which then still says
    PAUSED: the run would look unfinished to the export and to ``resume``. Marking it when the scheduler is told
    of its removal (just before Ray sets it TERMINATED) puts the final status into the next save.
    """

    def on_trial_remove(self, tune_controller, trial) -> None:
        super().on_trial_remove(tune_controller, trial)
        mark = getattr(tune_controller, "_mark_trial_to_checkpoint", None)
        if mark is not None:
            mark(trial)
