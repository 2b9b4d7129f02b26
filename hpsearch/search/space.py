"""The define-by-run search space handed to OptunaSearch, and its validation before a search starts."""

from __future__ import annotations

import dataclasses
import inspect
import traceback
from typing import TYPE_CHECKING, Any

import optuna

from hpsearch.config import check_value, field_types
from hpsearch.data import DataConfig
from hpsearch.errors import RecipeError, did_you_mean
from hpsearch.models import check_backbone, check_frozen_blocks, check_input_size, create_model
from hpsearch.training import TrialConfig, preserved_global_rng

if TYPE_CHECKING:
    from hpsearch.recipe import Recipe

TRIAL_NUMBER_KEY = "optuna_trial"


class TrialSpace:
    """The recipe's ``space(trial, options)`` plus the constants every trial needs, as one picklable callable.

    Every trial's config is the recipe's ``train`` defaults, overwritten by what ``space`` samples or
    returns, with ``epochs`` from the budget, ``seed`` = recipe seed + Optuna trial number, and the
    trial number itself (so ``trials.csv`` and ``study.db`` can be joined); ``space`` also gets the recipe's
    options (run directories written before that may hold a ``space(trial)``, which still runs). Pickling keeps
    the recipe's text and overrides, not the function, which is rebuilt where needed (Ray saves the searcher's
    state; a resume may run elsewhere).
    """

    def __init__(self, recipe: Recipe, overrides: list[str] | None = None):
        self.recipe_path = str(recipe.path)
        self.recipe_files = [str(p) for p in recipe.files]  # a recipe with a base is made of several
        self.recipe_source = recipe.source
        self.overrides = list(recipe.overrides if overrides is None else overrides)
        self.seed = recipe.seed
        self.defaults = {**dataclasses.asdict(recipe.train), "epochs": recipe.budget.max_epochs}
        self.options = dict(recipe.options)
        self._space = recipe.space
        self.last_constants: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_space"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._space = None

    @property
    def space(self):
        if self._space is None:
            from hpsearch.recipe import load_recipe

            self._space = load_recipe(self.recipe_path, self.overrides, source=self.recipe_source).space
        return self._space

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        takes_options = len(inspect.signature(self.space).parameters) >= 2
        returned = (self.space(trial, self.options) if takes_options else self.space(trial)) or {}
        if not isinstance(returned, dict):
            raise RecipeError(f"space(trial, options) must return None or a dict of constants, but got {returned!r}.")
        self.last_constants = dict(returned)  # what the latest call set (read by validate_space)
        sampled = set(trial.params)
        constants = {k: v for k, v in self.defaults.items() if k not in sampled}
        constants.update(returned)
        constants["seed"] = self.seed + trial.number
        constants[TRIAL_NUMBER_KEY] = trial.number
        return constants


def split_trial_config(config: dict[str, Any]) -> tuple[TrialConfig, int | None]:
    """Turn a trial's flat config back into a TrialConfig and its Optuna trial number."""
    values = dict(config)
    number = values.pop(TRIAL_NUMBER_KEY, None)
    return TrialConfig.from_dict(values), number


def run_space(space: TrialSpace, trial: optuna.Trial) -> dict[str, Any]:
    """Call the recipe's space; an error inside it becomes a RecipeError naming the recipe's line."""
    try:
        return space(trial)
    except RecipeError:
        raise
    except Exception as err:  # noqa: BLE001  any mistake in the recipe's own code
        files = getattr(space, "recipe_files", [space.recipe_path])
        frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename in files]
        file = "" if not frames or frames[-1].filename == space.recipe_path else f"{frames[-1].filename}, "
        where = f" ({file}line {frames[-1].lineno}: {frames[-1].line})" if frames else ""
        raise RecipeError(f"space(trial, options) of {space.recipe_path} failed{where}: {type(err).__name__}: "
                          f"{err}") from None


def check_distributions(trial: optuna.Trial, known: dict[str, Any]) -> None:
    """Every name the space samples is a training option, and every value it can take has that option's type."""
    for name, distribution in trial.distributions.items():
        if name not in known:
            raise RecipeError(f"space samples {name!r}, which is not a training option."
                              f"{did_you_mean(name, known)} Known options: {', '.join(sorted(known))}.")
        values = getattr(distribution, "choices", None) or (distribution.low, distribution.high)
        for value in values:
            check_value(f"train.{name} (sampled by space)", value, known[name])


def check_overrides(space: TrialSpace, trial: optuna.Trial, returned: dict[str, Any]) -> None:
    """``--set train.X=...`` for a value the space samples (or sets) would be silently ignored: refuse it."""
    for text in space.overrides:
        key, _, value = text.partition("=")
        section, _, name = key.strip().partition(".")
        if section == "train" and (name in trial.params or name in returned):
            verb = "samples" if name in trial.params else "sets"
            raise RecipeError(f"--set {key.strip()}={value} has no effect: the recipe's space {verb} {name!r} for "
                              f"every trial. Narrow the space instead (e.g. with the recipe's options), or remove "
                              f"{name!r} from it.")


def validate_space(space: TrialSpace, data: DataConfig | None = None, samples: int = 8, seed: int = 0) -> None:
    """Run the space on a few in-memory trials: every name must be a train knob of the right type, every
    backbone exist (and, given ``data``, take its image size), and no ``--set`` be shadowed by the space."""
    known = field_types(TrialConfig)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(verbosity, optuna.logging.WARNING))  # no "study created" line for this one
    try:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    finally:
        optuna.logging.set_verbosity(verbosity)
    backbones: set[str] = set()
    most_frozen = 0
    for _ in range(samples):
        trial = study.ask()
        config = run_space(space, trial)
        check_distributions(trial, known)
        check_overrides(space, trial, space.last_constants)
        backbone = trial.distributions.get("backbone")
        for name in getattr(backbone, "choices", [config.get("backbone")]):
            check_backbone(str(name))
            backbones.add(str(name))
        most_frozen = max(most_frozen, largest_value(trial, config, "frozen_blocks"))
        split_trial_config(config)
        study.tell(trial, 0.0)
    if data is not None:
        for name in sorted(backbones):
            with preserved_global_rng():  # the model is only looked at
                model = create_model(name, 2, data.in_chans, data.image_size)
            check_input_size(model, name, data.in_chans, data.image_size)
            check_frozen_blocks(model, most_frozen)


def sampled_distributions(space: TrialSpace, samples: int = 16, seed: int = 0) -> dict[str, list[Any]]:
    """Every distribution the space used for each name, over ``samples`` random in-memory trials (a define-by-run
    space shows its conditional parameters and backbone-dependent ranges only when sampled)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    found: dict[str, list[Any]] = {}
    for _ in range(samples):
        trial = study.ask()
        run_space(space, trial)
        for name, distribution in trial.distributions.items():
            if distribution not in found.setdefault(name, []):
                found[name].append(distribution)
        study.tell(trial, 0.0)
    return found


def widest_choice(distributions: dict[str, list[Any]]) -> int:
    """The most choices any categorical parameter offers (1 without categoricals)."""
    sizes = [len(d.choices) for found in distributions.values() for d in found
             if isinstance(d, optuna.distributions.CategoricalDistribution)]
    return max(sizes, default=1)


def largest_value(trial: optuna.Trial, config: dict, name: str) -> int:
    """The largest value ``name`` can take: its distribution's top, or the constant the space returned."""
    distribution = trial.distributions.get(name)
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return max(int(choice) for choice in distribution.choices)
    if isinstance(distribution, (optuna.distributions.IntDistribution, optuna.distributions.FloatDistribution)):
        return int(distribution.high)
    return int(config.get(name) or 0)
