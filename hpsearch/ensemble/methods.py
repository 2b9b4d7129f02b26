"""The registry of ensemble methods: how each is fit on validation predictions, how it is applied, what it saves.

A method is one class registered with ``@register_method``. ``fit`` turns a ``FitContext`` (the top trials,
their validation probabilities, the run) into a ``Fitted``: the ``EnsembleRecord`` it saves and its validation
probabilities. ``combiner`` rebuilds, from that record, the function that maps the members' probabilities to the
ensemble's. ``oof`` gives out-of-fold validation probabilities for methods that learn from validation data.
``ensemble``, ``evaluate``, ``predict``, ``export`` and ``report`` use every method through these calls only.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from torch import nn

from ensembles import (
    GreedySelection,
    HardVoting,
    OutOfFoldChoice,
    ProbaEnsemble,
    SingleModel,
    SoftVoting,
    Stacking,
    as_torch,
    cross_val_proba,
    log_loss,
)
from hpsearch.data import ImageArrays, TrialData
from hpsearch.errors import HpsearchError, did_you_mean
from hpsearch.rundir import BEST_SINGLE, REFIT_SUFFIX, EnsembleRecord, Member, RunDir, SavedModel

log = logging.getLogger(__name__)


@dataclass
class EnsembleOptions:
    """What ``hpsearch ensemble`` may spend: trials to combine, members to train and their budget, test-time views."""

    top_k: int = 5
    members: int = 5
    member_epochs: int | None = None  # None: the best trial's own number of epochs
    cpus_per_member: float = 1.0
    address: str | None = None
    tta: tuple[str, ...] | None = None  # test-time views tried for every model; None: flip if trained with flips
    folds: int = 5  # for out-of-fold validation scores


@dataclass
class FitContext:
    """What a method is fit on: the run, its top trials (best first) and their validation probabilities, with
    or without test-time ``views``. Variants of one context share ``memo`` (members trained once)."""

    run: RunDir
    members: list[SavedModel]
    top: pd.DataFrame
    val: ImageArrays
    options: EnsembleOptions = field(default_factory=EnsembleOptions)
    views: tuple[str, ...] = ()
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def y(self) -> np.ndarray:
        return self.val.labels

    def probs(self, model: SavedModel) -> np.ndarray:
        """``model``'s validation probabilities under this context's test-time views."""
        return self.run.val_probs(model, self.views, self.val)

    def stack(self, models: list[SavedModel]) -> np.ndarray:
        return np.stack([self.probs(m) for m in models])

    def oof_probs(self, model: SavedModel) -> np.ndarray:
        """``model``'s validation probabilities for out-of-fold scores: those of its out-of-fold epoch choice
        where its training kept them (with this context's views), else its best epoch's."""
        chosen = model.epoch_oof_probs(self.views)
        if chosen is not None:
            return chosen
        if f"best-epoch:{model.folder}" not in self.memo:  # one line per model, not per variant
            self.memo[f"best-epoch:{model.folder}"] = True
            log.info("%s has no out-of-fold epoch choice with views %s (trained before hpsearch kept one, or with "
                     "other views): its out-of-fold scores use its best epoch", model.name, list(self.views) or "none")
        return self.probs(model)

    def oof_stack(self, models: list[SavedModel]) -> np.ndarray:
        return np.stack([self.oof_probs(m) for m in models])

    @cached_property
    def val_stack(self) -> np.ndarray:
        """(n_members, n_val, n_classes): the top trials' validation probabilities."""
        return self.stack(self.members)

    def with_views(self, views: tuple[str, ...]) -> FitContext:
        return dataclasses.replace(self, views=views)

    def remember(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()`` once per context family (e.g. members trained for the plain and the +tta variant alike)."""
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]

    @cached_property
    def trial_data(self) -> TrialData:
        """Training and validation images, for methods that train new members."""
        return dataclasses.replace(self.run.trial_data(), val=self.val)

    @property
    def best(self) -> SavedModel:
        return self.members[0]

    @property
    def best_row(self) -> pd.Series:
        return self.top.iloc[0]


@dataclass
class Fitted:
    """A method's result: the record to save and the ensemble's probabilities on the validation images."""

    record: EnsembleRecord
    probs: np.ndarray


Combiner = Callable[[np.ndarray], np.ndarray]  # (n_members, n, n_classes) -> (n, n_classes)


class EnsembleMethod:
    """One way to make a model of the search's trials; subclasses set ``name`` and implement ``fit`` and
    ``combiner`` (and ``oof`` when they learn from validation data in a way the default cannot refit)."""

    name: ClassVar[str]
    learns_from_validation: ClassVar[bool] = True  # False: nothing is fit on validation predictions
    position: ClassVar[int] = 100  # where its rows go in the tables (the built-in methods come first)

    def fit(self, ctx: FitContext) -> Fitted:
        raise NotImplementedError

    def check_options(self, options: EnsembleOptions) -> None:
        """Raise ``HpsearchError`` if ``options`` cannot make this method's model (before any method trains)."""

    def build_command(self, run_dir: str) -> str:
        """The command that makes this method's model in ``run_dir``."""
        return f"hpsearch ensemble {run_dir} --methods {self.name}"

    def estimator(self, record: EnsembleRecord, val_stack: np.ndarray | None, y_val: np.ndarray) -> ProbaEnsemble:
        """The fitted combination rule, rebuilt from ``record`` (and, where it refits, validation data)."""
        raise NotImplementedError(f"{self.name} defines neither estimator() nor combiner()")

    def combiner(self, record: EnsembleRecord, val_stack: np.ndarray | None, y_val: np.ndarray) -> Combiner:
        """The ensemble's combination rule as a function of the members' probabilities."""
        return self.estimator(record, val_stack, y_val).predict_proba

    def torch_combiner(self, record: EnsembleRecord, val_stack: np.ndarray | None, y_val: np.ndarray) -> nn.Module:
        """The combination rule as a torch module, for ``export`` (one graph for the whole ensemble)."""
        try:
            return as_torch(self.estimator(record, val_stack, y_val))
        except (NotImplementedError, TypeError) as err:
            raise HpsearchError(f"Models made by {self.name!r} cannot be exported ({err}).") from None

    def oof(self, ctx: FitContext, fitted: Fitted) -> np.ndarray:
        """Out-of-fold validation probabilities. A method that learns nothing from validation applies its rule
        to its models' out-of-fold epoch choices (``FitContext.oof_probs``)."""
        if self.learns_from_validation:
            raise NotImplementedError(f"{self.name} learns from validation data but defines no oof()")
        stack = ctx.oof_stack(record_models(ctx.run, fitted.record))
        return self.combiner(fitted.record, stack, ctx.y)(stack)


METHODS: dict[str, EnsembleMethod] = {}


def register_method(cls: type[EnsembleMethod]) -> type[EnsembleMethod]:
    """Class decorator: make ``cls`` available to ``ensemble``, ``evaluate``, ``predict`` and ``export``."""
    METHODS[cls.name] = cls()
    ordered = sorted(METHODS.values(), key=lambda m: m.position)  # stable: registration order breaks ties
    METHODS.clear()
    METHODS.update((m.name, m) for m in ordered)
    return cls


def get_method(name: str) -> EnsembleMethod:
    if name not in METHODS:
        raise HpsearchError(f"Unknown ensemble method {name!r}.{did_you_mean(name, METHODS)} "
                            f"Choose from {', '.join(METHODS)}.")
    return METHODS[name]


def members_of(run: RunDir, models: list[SavedModel], weights: np.ndarray | None = None) -> tuple[Member, ...]:
    """Record entries for ``models`` (uniform weights unless given), with paths relative to the run."""
    weights = np.full(len(models), 1.0 / len(models)) if weights is None else weights
    return tuple(Member(m.name, str(m.folder.relative_to(run.path)), float(w), m.trial_id)
                 for m, w in zip(models, weights, strict=True))


def make_record(ctx: FitContext, method: str, estimator: Any, models: list[SavedModel], probas: np.ndarray,
                params: dict[str, Any] | None = None, model: str | None = None, **details: Any) -> Fitted:
    """A fitted method: its record (validation accuracy and log-loss computed from ``probas``) and ``probas``."""
    weights = getattr(estimator, "weights_", None)
    name = estimator if isinstance(estimator, str) else type(estimator).__name__
    if params is None:
        params = estimator.get_params() if hasattr(estimator, "get_params") else {}
    record = EnsembleRecord(method, name, members_of(ctx.run, models, weights),
                            float((probas.argmax(1) == ctx.y).mean()), log_loss(probas, ctx.y), params, model,
                            details, tta=ctx.views)
    return Fitted(record, probas)


@register_method
class BestSingle(EnsembleMethod):
    """The search's best trial (by validation accuracy, then loss), alone."""

    name, position = BEST_SINGLE, 0

    def fit(self, ctx: FitContext) -> Fitted:
        return make_record(ctx, self.name, "SingleModel", [ctx.best], ctx.probs(ctx.best), params={},
                           trial=ctx.best.trial_id)

    def oof(self, ctx: FitContext, fitted: Fitted) -> np.ndarray:
        """Which trial is best is a choice made on validation too: each fold is predicted by the top trial that
        scores best on the other folds (``OutOfFoldChoice``, as each trial's epoch is chosen), each trial with its
        out-of-fold epoch choice."""
        choice = OutOfFoldChoice(ctx.y, ctx.options.folds, ctx.run.seed)
        return choice.choose(ctx.oof_probs(model) for model in ctx.members)

    def estimator(self, record: EnsembleRecord, val_stack: np.ndarray | None, y_val: np.ndarray) -> ProbaEnsemble:
        return SingleModel().fit()


class ProbabilityMethod(EnsembleMethod):
    """Combines the validation probabilities of its ``pool`` (the top trials) with an estimator from ``ensembles``."""

    estimator_class: ClassVar[type[ProbaEnsemble]]

    def make_estimator(self, ctx: FitContext) -> ProbaEnsemble:
        return self.estimator_class()

    def details(self, estimator: ProbaEnsemble) -> dict[str, Any]:
        return {}

    def pool(self, ctx: FitContext) -> list[SavedModel]:
        """The models this method combines: the top trials."""
        return ctx.members

    def pool_stack(self, ctx: FitContext) -> np.ndarray:
        """(n_models, n_val, n_classes): the pool's validation probabilities."""
        models = self.pool(ctx)
        return ctx.val_stack if models is ctx.members else ctx.stack(models)

    def fit(self, ctx: FitContext) -> Fitted:
        stack = self.pool_stack(ctx)
        estimator = self.make_estimator(ctx).fit(stack, ctx.y)
        probas = estimator.predict_proba(stack)
        return make_record(ctx, self.name, estimator, self.pool(ctx), probas, **self.details(estimator))

    def estimator(self, record: EnsembleRecord, val_stack: np.ndarray | None, y_val: np.ndarray) -> ProbaEnsemble:
        """Refit on the members' validation predictions: deterministic, and no pickles on disk."""
        return self.estimator_class(**record.params).fit(val_stack, y_val)

    def oof(self, ctx: FitContext, fitted: Fitted) -> np.ndarray:
        """Refit on k-1 folds of the pool's out-of-fold epoch choices, predict the held-out fold."""
        if not self.learns_from_validation:
            return super().oof(ctx, fitted)
        return cross_val_proba(lambda: self.make_estimator(ctx), ctx.oof_stack(self.pool(ctx)), ctx.y,
                               ctx.options.folds, ctx.run.seed)


@register_method
class Average(ProbabilityMethod):
    name, estimator_class, learns_from_validation, position = "average", SoftVoting, False, 10


@register_method
class Vote(ProbabilityMethod):
    name, estimator_class, learns_from_validation, position = "vote", HardVoting, False, 20


@register_method
class Greedy(ProbabilityMethod):
    name, estimator_class, position = "greedy", GreedySelection, 30

    def make_estimator(self, ctx: FitContext) -> ProbaEnsemble:
        return GreedySelection(max_size=25, random_state=ctx.run.seed)

    def details(self, estimator: GreedySelection) -> dict[str, Any]:
        return {"trajectory": estimator.trajectory_, "best_step": estimator.best_step_}


@register_method
class Stack(ProbabilityMethod):
    name, estimator_class, position = "stacking", Stacking, 40

    def make_estimator(self, ctx: FitContext) -> ProbaEnsemble:
        # no cv_score: val_accuracy_oof refits the whole stacking per fold, a stricter estimate of the same thing
        return Stacking(cv=5, random_state=ctx.run.seed)


class SingleModelMethod(EnsembleMethod):
    """A method whose result is one new model (a soup, a distilled student) saved in ``record.model``."""

    def estimator(self, record: EnsembleRecord, val_stack: np.ndarray | None, y_val: np.ndarray) -> ProbaEnsemble:
        return SingleModel().fit()


def record_models(run: RunDir, record: EnsembleRecord) -> list[SavedModel]:
    """The saved models whose probabilities the record's combiner takes, in order (a refit record's retrained
    members in their originals' places)."""
    if record.model is not None:
        return [SavedModel(record.method, run.inside(record.model))]
    models = [run.member_model(m) for m in record.members]
    for i, folder in enumerate(record.refit):
        if folder is not None:
            models[i] = SavedModel(f"{models[i].name}{REFIT_SUFFIX}", run.inside(folder), models[i].trial_id)
    return models


def used_positions(record: EnsembleRecord) -> list[int]:
    """Positions in ``record_models`` whose probabilities the combination uses: the record's one model, or every
    member with weight (greedy selection and the library may leave most of theirs at 0)."""
    return [0] if record.model is not None else record.weighted_positions()


def combiner_input(probs: dict[int, np.ndarray], count: int) -> np.ndarray:
    """(count, images, classes): the used models' probabilities (``used_positions`` -> probabilities) in their
    places, and uniform ones for the models of weight 0, which are left out of the combination and never run."""
    first = next(iter(probs.values()))
    filler = np.full_like(first, 1.0 / first.shape[1])
    return np.stack([probs.get(i, filler) for i in range(count)])


def member_val_stack(run: RunDir, record: EnsembleRecord) -> np.ndarray | None:
    """The members' validation probabilities (with the record's test-time views) that methods refit on."""
    if record.model is not None:
        return None
    return np.stack([run.val_probs(run.member_model(m), record.tta) for m in record.members])


def ensemble_combiner(run: RunDir, record: EnsembleRecord, y_val: np.ndarray) -> Combiner:
    """The function from the models' probabilities (in ``record_models`` order, with the record's test-time
    views) to the ensemble's, before temperature scaling."""
    return get_method(record.method).combiner(record, member_val_stack(run, record), y_val)


def ensemble_torch_combiner(run: RunDir, record: EnsembleRecord, y_val: np.ndarray) -> nn.Module:
    """``ensemble_combiner`` as a torch module."""
    return get_method(record.method).torch_combiner(record, member_val_stack(run, record), y_val)
