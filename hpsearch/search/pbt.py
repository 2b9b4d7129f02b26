"""Population-based training (``budget.scheduler = "pbt"``) over a recipe's define-by-run space.

Ray's PopulationBasedTraining refuses a search algorithm (it rewrites trial configs itself), so PBT cannot use
OptunaSearch. Instead:

- **The initial population** is asked from the run's Optuna study through the recipe's ``space`` with the
  run's sampler, all of it start-up trials (a Latin hypercube: every backbone is in the population when the
  population is at least as large as the backbone list). Ray runs exactly these configurations
  (``BasicVariantGenerator(points_to_evaluate=...)``); each keeps its Optuna trial number, and Optuna is told
  each member's final score when the search is exported (``settle_population``).
- **Explore** perturbs the numeric knobs the space samples among ``lr``, ``weight_decay``, ``aug_strength`` and
  ``mixup_alpha`` (Ray's own rule: x0.8 or x1.2, or a resample with probability 0.25; a categorical knob moves
  to a neighbouring choice). Their ranges are the union the space uses; after perturbing, each value is clipped
  to the range the space gives the donor's configuration (for example, the lr range of its backbone).
- **Exploit**: a trial in the bottom quarter continues from a top trial's latest checkpoint through the
  trainable's ordinary restore path (weights, optimizer, epoch counter, random state), then applies its own
  new values: the optimizer's weight decay, and the learning rate of the new configuration's cosine schedule
  at the restored step (the schedule is a function of the step, so it continues, scaled to the new lr).
  It keeps its own identity (Optuna trial number, seed) and takes the donor's backbone with its weights.
- **Checkpoints** stay one small state per epoch: Ray keeps the last ``interval + 2`` of each trial (the donor's
  checkpoint at its last perturbation step is among them), and an exploiting trial continues from a private
  copy of it, deleted as soon as the trial has reported from it.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any

import optuna
import pandas as pd
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from ray.tune.schedulers import PopulationBasedTraining

from hpsearch.errors import RecipeError
from hpsearch.search.export import PBT_COPY_PREFIX
from hpsearch.search.space import TRIAL_NUMBER_KEY, TrialSpace, run_space

if TYPE_CHECKING:
    from hpsearch.search.budget import BudgetConfig

PBT_KNOBS = ("lr", "weight_decay", "aug_strength", "mixup_alpha")
IDENTITY = (TRIAL_NUMBER_KEY, "seed")  # what an exploiting trial keeps of its own config
log = logging.getLogger(__name__)


def mutations(distributions: dict[str, list[Any]]) -> dict[str, Any]:
    """Ray search-space objects (or choice lists) covering every range the space uses for each PBT knob."""
    from ray import tune

    found = {}
    for name in PBT_KNOBS:
        seen = distributions.get(name, [])
        if any(isinstance(d, CategoricalDistribution) for d in seen):
            found[name] = sorted({c for d in seen for c in getattr(d, "choices", ())})
        elif seen:
            low, high = min(d.low for d in seen), max(d.high for d in seen)
            if low < high:
                found[name] = tune.loguniform(low, high) if seen[0].log else tune.uniform(low, high)
    if not found:
        raise RecipeError(f"budget.scheduler='pbt' perturbs {', '.join(PBT_KNOBS)}, but the recipe's space samples "
                          f"none of them; sample at least one (e.g. trial.suggest_float('lr', 1e-4, 1e-2, log=True)) "
                          f"or choose another budget.scheduler.")
    return found


def clip(distribution: Any, value: Any) -> Any:
    """``value`` moved into ``distribution``: numbers clipped to its range, a choice to the nearest choice."""
    if isinstance(distribution, CategoricalDistribution):
        if value in distribution.choices:
            return value
        numeric = [c for c in distribution.choices if isinstance(c, (int, float))]
        return min(numeric, key=lambda c: abs(c - value)) if numeric else distribution.choices[0]
    if isinstance(distribution, (FloatDistribution, IntDistribution)):
        clipped = min(max(value, distribution.low), distribution.high)
        return int(round(clipped)) if isinstance(distribution, IntDistribution) else float(clipped)
    return value


def knob_distributions(space: TrialSpace, config: dict[str, Any]) -> dict[str, Any]:
    """The distributions ``space`` gives the PBT knobs of ``config`` (its other values held fixed)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({k: v for k, v in config.items() if k not in PBT_KNOBS})
    trial = study.ask()
    with warnings.catch_warnings():  # values the space does not ask for are simply unused
        warnings.simplefilter("ignore")
        run_space(space, trial)
    return {name: d for name, d in trial.distributions.items() if name in PBT_KNOBS}


def clip_to_space(space: TrialSpace, config: dict[str, Any]) -> dict[str, Any]:
    """Clip the PBT knobs of ``config`` into the ranges ``space`` gives that configuration."""
    clipped = dict(config)
    for name, distribution in knob_distributions(space, config).items():
        if name in clipped:
            clipped[name] = clip(distribution, clipped[name])
    return clipped


class Population(PopulationBasedTraining):
    """Ray's PopulationBasedTraining with the three changes hpsearch's trials need (see the module docstring):
    the exploiting trial keeps its identity, perturbed values stay inside the space, and it continues from a
    private copy of the donor's checkpoint."""

    def __init__(self, space: TrialSpace, max_epochs: int, **kwargs):
        super().__init__(**kwargs)
        self.space, self.max_epochs = space, max_epochs
        self.copies: dict[str, list[Any]] = {}  # trial id -> its checkpoint copies not yet deleted

    def _get_new_config(self, trial, trial_to_clone):
        config, operations = super()._get_new_config(trial, trial_to_clone)
        config = clip_to_space(self.space, config)
        for key in IDENTITY:
            if key in trial.config:
                config[key] = trial.config[key]
        return config, operations

    def _exploit(self, tune_controller, trial, trial_to_clone):
        donor = self._trial_state[trial_to_clone].last_result or {}
        if int(donor.get("epoch", 0)) >= self.max_epochs:
            return  # the donor has trained its last epoch: continuing from it would leave nothing to train
        super()._exploit(tune_controller, trial, trial_to_clone)
        self.copy_latest_checkpoint(trial)

    def copy_latest_checkpoint(self, trial) -> None:
        """Point ``trial`` at a copy of the checkpoint it was given, in its own folder: the donor trains on and
        Ray deletes its older checkpoints."""
        from pyarrow import fs as pafs
        from ray.train import Checkpoint
        from ray.train._internal.session import _TrainingResult

        manager = trial.run_metadata.checkpoint_manager
        latest = manager.latest_checkpoint_result
        if latest is None or latest.checkpoint is None:
            return
        source, storage = latest.checkpoint, trial.storage
        target = f"{storage.trial_fs_path}/{PBT_COPY_PREFIX}{self._num_perturbations:05d}"
        storage.storage_filesystem.create_dir(target, recursive=True)
        pafs.copy_files(source.path, target, source_filesystem=source.filesystem,
                        destination_filesystem=storage.storage_filesystem)
        copy = Checkpoint(path=target, filesystem=storage.storage_filesystem)
        manager._latest_checkpoint_result = _TrainingResult(checkpoint=copy, metrics=latest.metrics)
        self.drop_copies(trial, keep_latest=False)
        self.copies.setdefault(trial.trial_id, []).append(copy)

    def drop_copies(self, trial, keep_latest: bool = True) -> None:
        """Delete the trial's copies that are no longer its latest checkpoint (it has checkpointed since)."""
        latest = trial.run_metadata.checkpoint_manager.latest_checkpoint_result
        current = latest.checkpoint.path if latest is not None and latest.checkpoint is not None else None
        kept = []
        for copy in self.copies.pop(trial.trial_id, []):
            if keep_latest and copy.path == current:
                kept.append(copy)
                continue
            try:
                copy.filesystem.delete_dir(copy.path)
            except OSError as err:  # a leftover copy costs disk space, not correctness
                log.debug("Could not delete %s: %s", copy.path, err)
        if kept:
            self.copies[trial.trial_id] = kept

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if trial.trial_id in self.copies:
            self.drop_copies(trial)
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self.drop_copies(trial)  # the copy it ended on (if it did) is what the export reads
        super().on_trial_complete(tune_controller, trial, result)


def population_scheduler(budget: BudgetConfig, space: TrialSpace, distributions: dict[str, list[Any]]) -> Population:
    return Population(space, budget.max_epochs, time_attr="epoch", perturbation_interval=budget.interval,
                      hyperparam_mutations=mutations(distributions), quantile_fraction=0.25,
                      resample_probability=0.25)


def ask_population(study: optuna.Study, space: TrialSpace, size: int) -> list[dict[str, Any]]:
    """Ask ``size`` trials of the study through the recipe's space: the configs PBT starts from."""
    configs = []
    for _ in range(size):
        trial = study.ask()
        constants = run_space(space, trial)
        configs.append({**trial.params, **constants})
    return configs


def settle_population(study: optuna.Study, trials: pd.DataFrame) -> int:
    """Tell Optuna how each trial still running in the study ended (a PBT member, or a trial the time budget ended
    before its first result): its best validation accuracy, or a failure; return how many."""
    from optuna.trial import TrialState

    running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    told = 0
    for row in trials.itertuples():
        number = getattr(row, "optuna_trial", None)
        if pd.isna(number) or int(number) not in running:
            continue
        if row.status == "completed" and pd.notna(row.val_acc):
            study.tell(int(number), float(row.val_acc))
        elif row.status in ("failed", "completed"):  # completed without a result: ended before its first epoch
            study.tell(int(number), state=TrialState.FAIL)
        else:
            continue
        told += 1
    return told
