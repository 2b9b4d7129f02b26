"""Optuna samplers sized to the budget, with start-up trials that cover the space.

Optuna's samplers start with random trials (TPE's first 10 by default), and a CPU budget holds fewer than
that: a 6-trial search over two backbones could draw the same backbone six times. Here every model-based
sampler (``tpe``, ``gp``, ``cmaes``) starts with ``startup_trials(...)`` trials of a Latin hypercube
(``StratifiedStartup``), which tries every categorical choice whenever the start-up is at least as long as
the widest choice, and then hands over to the model. ``random`` stays plain random search: the baseline.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState
from scipy.stats import qmc

from hpsearch.errors import RecipeError

SAMPLERS = ("tpe", "gp", "random", "cmaes")
STRATIFIED = (CategoricalDistribution, FloatDistribution, IntDistribution)
MAX_STARTUP = 10


def startup_trials(num_samples: int, widest_choice: int = 1, requested: int | None = None) -> int:
    """Start-up trials for a budget: ``requested`` if given, else a quarter of ``num_samples`` (rounded up),
    raised to the widest categorical choice so that each choice is tried, at most 10 and ``num_samples``."""
    if requested is not None:
        return requested
    return max(1, min(num_samples, MAX_STARTUP, max(math.ceil(num_samples / 4), widest_choice)))


def is_startup_trial(number: int | None, n_startup: int) -> bool:
    """Whether Optuna trial ``number`` is one of the ``n_startup`` start-up trials of ``StratifiedStartup``: the
    study's first trials, counted from 0 by trial number (imported and enqueued trials count too)."""
    return number is not None and 0 <= number < n_startup


def sampler_seed(seed: int, experiment: int, imported: int = 0) -> int:
    """The sampler's seed for a run's ``experiment``-th Ray experiment (1: the first) on a study that holds
    ``imported`` trials of earlier runs (a warm start). An extension must not draw the first experiment's trials
    again, and a warm-started study must not replay its source run's draws: the same seed on the same known
    trials gives TPE the same candidates (a warm start from the flowers run redrew one of its imported trials'
    learning rates to the last digit)."""
    base = seed + 1000 * (experiment - 1)
    if not imported:
        return base
    return int(np.random.SeedSequence([base % 2**32, imported]).generate_state(1)[0])


def from_unit(distribution: BaseDistribution, u: float, stratum: int, strata: int) -> Any:
    """The value of ``distribution`` at ``u`` in [0, 1) (log scale where the distribution is log); a categorical
    takes choice ``stratum * choices // strata``, so that ``strata`` trials give every choice equally often."""
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[stratum * len(distribution.choices) // strata]
    low, high = float(distribution.low), float(distribution.high)
    if distribution.log:
        value = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    else:
        value = low + u * (high - low)
    step = distribution.step
    if step is not None:
        value = low + round((value - low) / step) * step
    value = min(max(value, low), high)
    return int(round(value)) if isinstance(distribution, IntDistribution) else float(value)


class StratifiedStartup(BaseSampler):
    """Latin-hypercube start-up trials, then ``sampler``.

    The study's first ``n_startup`` trials (counted by trial number, whatever their state, so that trials that
    run at once get distinct points, and trials added by a warm start count as known ones) each take one stratum
    of a Latin hypercube from scipy's ``qmc.LatinHypercube``: every parameter's range is cut into ``n_startup``
    strata, each used by exactly one start-up trial, in an order drawn per parameter name. The value is decided
    when the space asks for the parameter, so conditional parameters and ranges that depend on an earlier
    choice (define-by-run spaces) work. Later trials are ``sampler``'s once every start-up trial has ended; a
    trial that starts while one still runs is drawn at random instead. With trials running at once, the model
    would otherwise fit the trials that end first, which are the cheapest configurations rather than the best: on
    2 cores a TPE fed the finished ``tutorial_cnn`` start-up trial (and the pruned ``tutorial_cnn`` trials that
    followed it) drew ``tutorial_cnn`` 11 to 13 times in a row while the better ``resnet10t`` start-up trial was still
    training.
    """

    def __init__(self, sampler: BaseSampler, n_startup: int, seed: int | None = None):
        self.sampler, self.n_startup, self.seed = sampler, n_startup, seed
        self.random = optuna.samplers.RandomSampler(seed=seed)
        self._early: dict[int, bool] = {}  # trial number -> drawn at random (a start-up trial still runs)

    def _startup_index(self, trial: FrozenTrial) -> int | None:
        """The trial's place among the start-up trials (its number: a study numbers its trials 0, 1, ...)."""
        return trial.number if is_startup_trial(trial.number, self.n_startup) else None

    def _next(self, study: Study, trial: FrozenTrial) -> BaseSampler:
        """The sampler of a trial after the start-up ones: the model once every start-up trial has ended
        (complete, pruned or failed), else random sampling."""
        if trial.number not in self._early:
            startup = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)[:self.n_startup]
            self._early[trial.number] = any(not t.state.is_finished() for t in startup)
        return self.random if self._early[trial.number] else self.sampler

    def _unit(self, name: str, index: int) -> tuple[float, int]:
        """(u, stratum) of start-up trial ``index`` for parameter ``name``: the same in every process."""
        rng = np.random.default_rng([self.seed or 0, zlib.crc32(name.encode())])
        u = float(qmc.LatinHypercube(d=1, rng=rng).random(self.n_startup)[index, 0])
        return u, min(int(u * self.n_startup), self.n_startup - 1)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if self._startup_index(trial) is not None:
            return {}
        return self._next(study, trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if self._startup_index(trial) is not None:
            return {}
        return self._next(study, trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        index = self._startup_index(trial)
        if index is None:
            return self._next(study, trial).sample_independent(study, trial, param_name, param_distribution)
        if not isinstance(param_distribution, STRATIFIED):
            return self.sampler.sample_independent(study, trial, param_name, param_distribution)
        u, stratum = self._unit(param_name, index)
        return from_unit(param_distribution, u, stratum, self.n_startup)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.sampler.before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values) -> None:
        self._early.pop(trial.number, None)
        self.sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.sampler.reseed_rng()
        self.random.reseed_rng()


def model_sampler(name: str, seed: int, concurrent: int) -> BaseSampler:
    """The model-based sampler that follows the start-up trials (which it does not repeat)."""
    random = optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        # multivariate + group: one joint model per group of parameters that appear together (conditional
        # spaces such as drop_path_rate for some backbones); constant liar: trials that run at once differ.
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=1, multivariate=True, group=True,
                                          constant_liar=concurrent > 1)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=2, independent_sampler=random,
                                         warn_independent_sampling=False)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=1, independent_sampler=random,
                                            warn_independent_sampling=False, consider_pruned_trials=True)
    raise RecipeError(f"budget.sampler must be one of {list(SAMPLERS)}, but got {name!r}.")


def make_sampler(name: str, seed: int, n_startup: int, concurrent: int = 1) -> BaseSampler:
    """``random``: Optuna's RandomSampler (the baseline); ``tpe``, ``gp``, ``cmaes``: ``n_startup`` stratified
    trials, then that model."""
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    model = model_sampler(name, seed, concurrent)
    return StratifiedStartup(model, n_startup, seed) if n_startup > 0 else model


def describe(distribution: BaseDistribution) -> str:
    """A distribution as a recipe writes it: ``0.0003..0.003 (log)`` or ``choices ('a', 'b')``."""
    if isinstance(distribution, CategoricalDistribution):
        return f"choices {distribution.choices}"
    log_scale = " (log)" if getattr(distribution, "log", False) else ""
    return f"{distribution.low:g}..{distribution.high:g}{log_scale}"


def varying_ranges(sampler: str, distributions: dict[str, list[BaseDistribution]]) -> list[str]:
    """One line per parameter that the space samples with more than one range (a range that depends on an
    earlier draw, such as a learning rate per backbone), for a model-based sampler; none for ``random``.

    Optuna's models keep one distribution per name: multivariate TPE the first trial's (a joint draw outside the
    current trial's range is redrawn at random, and values outside the first range are never proposed), GP and
    CMA-ES none (the name is always drawn at random). Measured on the flowers CPU space of before 2026-12-01, whose
    first trial was tutorial_cnn (lr 3e-4..3e-3), with a made-up score that rises with resnet10t's rate
    (lr 5e-4..5e-3): in 58 modelled trials on resnet10t, TPE never proposed a rate above 3e-3.
    """
    if sampler == "random":
        return []
    return [f"space samples {name!r} with {len(found)} ranges ({', '.join(describe(d) for d in found)}) depending "
            f"on earlier draws; Optuna's {sampler} sampler models one range per name, so it cannot learn {name!r} "
            f"across them. Sample {name!r} with one range (e.g. an option Range that --set narrows)."
            for name, found in distributions.items() if len(found) > 1]
