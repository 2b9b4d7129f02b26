"""Ray Tune trial schedulers by name: when a trial stops early (or, for PBT, what it continues from).

Every scheduler counts time in epochs (``time_attr="epoch"``), so rungs and intervals are whole epochs and a
trial that resumes from its checkpoint keeps its place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ray.tune.schedulers import ASHAScheduler, HyperBandForBOHB, MedianStoppingRule, TrialScheduler

from hpsearch.errors import RecipeError
from hpsearch.search.samplers import is_startup_trial
from hpsearch.search.space import TRIAL_NUMBER_KEY

if TYPE_CHECKING:
    from hpsearch.search.budget import BudgetConfig

SCHEDULERS = ("asha", "hyperband", "pbt", "median", "fifo")


def make_scheduler(budget: BudgetConfig, startup_trials: int = 0):
    """The scheduler of ``budget.scheduler`` (``None`` for ``fifo``: every trial runs until it ends itself).

    ASHA and the median rule never stop the sampler's ``startup_trials`` (``StartupExempt``). ``hyperband`` is
    Ray's ``HyperBandForBOHB``: Hyperband brackets without pipelining, which pause trials at a rung even before the
    bracket is full, so it works with a limited number of concurrent trials (together with ``PausingLimiter``); its
    brackets decide for paused trials together, and it exempts none. ``pbt`` is built by ``hpsearch.search.pbt``,
    which also samples its population.
    """
    if budget.scheduler == "asha":
        return StartupASHA(time_attr="epoch", max_t=budget.max_epochs, grace_period=budget.grace_epochs,
                           reduction_factor=budget.reduction_factor, startup_trials=startup_trials,
                           max_epochs=budget.max_epochs)
    if budget.scheduler == "hyperband":
        return Hyperband(time_attr="epoch", max_t=budget.max_epochs, reduction_factor=budget.reduction_factor)
    if budget.scheduler == "median":
        return StartupMedianStoppingRule(time_attr="epoch", grace_period=budget.grace_epochs, min_samples_required=3,
                                         startup_trials=startup_trials, max_epochs=budget.max_epochs)
    if budget.scheduler == "fifo":
        return None
    raise RecipeError(f"budget.scheduler must be one of {list(SCHEDULERS)}, but got {budget.scheduler!r}; "
                      f"'pbt' is built by hpsearch.search.pbt.")


class StartupExempt:
    """A Ray scheduler that never stops the sampler's start-up trials early; the others it stops as before.

    The stratified start-up gives every categorical choice (each backbone) a trial so that the model-based
    sampler can judge it, and the sampler waits for those trials to end. Stopped at an early rung, a start-up
    trial reaches the sampler as a PRUNED trial with a short-horizon score, ranked below every finished trial:
    in the real search benchmark (seed 4), ASHA stopped the ``resnet10t`` start-up trial at epoch 2 (0.44) because
    two ``tutorial_cnn`` trials, seven times faster per epoch, had reached that rung first (0.46), and TPE drew
    ``tutorial_cnn`` in all 63 later trials. The scheduler still sees every result of a start-up trial (ASHA
    records it in its rung, so it sets the bar for later trials); only the decision to stop it is dropped, before
    its last epoch (ASHA stops every trial at ``max_t``: that ends it as usual). The recipe's ``defaults``, which
    are the first trials, are start-up trials too when they fall within ``startup_trials``.
    """

    def __init__(self, *args, startup_trials: int = 0, max_epochs: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.startup_trials, self.max_epochs = startup_trials, max_epochs

    def exempt(self, trial, result: dict) -> bool:
        """Whether ``trial`` is a start-up trial with epochs left."""
        return (is_startup_trial(trial.config.get(TRIAL_NUMBER_KEY), self.startup_trials)
                and int(result.get("epoch", self.max_epochs)) < self.max_epochs)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and self.exempt(trial, result):
            self.forget_stop(trial)
            return TrialScheduler.CONTINUE
        return action

    def forget_stop(self, trial) -> None:
        """Undo the scheduler's own bookkeeping of a decision to stop ``trial``."""
        raise NotImplementedError


class StartupASHA(StartupExempt, ASHAScheduler):
    """Ray's ASHA without early stops of start-up trials (``StartupExempt``)."""

    def forget_stop(self, trial) -> None:
        self._num_stopped -= 1


class StartupMedianStoppingRule(StartupExempt, MedianStoppingRule):
    """Ray's median stopping rule without early stops of start-up trials (``StartupExempt``)."""

    def forget_stop(self, trial) -> None:
        self._stopped_trials.discard(trial)


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
