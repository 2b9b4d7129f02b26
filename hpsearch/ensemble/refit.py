"""``hpsearch refit``: a chosen model's trials retrained on training + validation images, for the model that ships.

Validation chose the model, each member's number of epochs, and the ensemble's weights, combination and
temperature. A refit (scikit-learn's ``refit``) keeps every one of those choices and retrains only each member:
its configuration, from its own seed, on the training and validation images together, stopped at the epoch that
validation chose (the trial's schedule cut there, as the trial's kept weights were). The test split is never read.

A refit has no validation score of its own, so nothing ranks it: ``ensembles.csv`` leaves it out, greedy
selection and stacking never pool it, distillation refuses it as a teacher. ``evaluate`` scores it beside the
model it refits, and ``--model auto`` (``predict``, ``export``) ships it in that model's place.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from hpsearch.data import ImageArrays, TrialData
from hpsearch.ensemble.selection import resolve_model
from hpsearch.errors import HpsearchError, RecipeError
from hpsearch.io import read_json
from hpsearch.rundir import (
    BEST_FILE,
    MODEL_FILE,
    REFIT_DIR,
    REFIT_SUFFIX,
    EnsembleRecord,
    Member,
    RunDir,
    read_record,
    save_refit_folder,
    write_record,
)
from hpsearch.training import Trainer, TrialConfig

log = logging.getLogger(__name__)
TRAINED_ON = "train+val"  # what best.json of a refit says it was trained on


def refit_run(run_dir: Path, model: str = "auto") -> EnsembleRecord:
    """Retrain every member of ``model`` (``auto``: the model validation chose) that carries weight on training +
    validation images; save them under ``refit/`` and the model as ``ensembles/<model>+refit.json``."""
    run = RunDir(run_dir)
    record = resolve_model(run, model)
    check_refittable(run, record)
    data = refit_data(run)
    folders = tuple(refit_member(run, member, data) if member.weight > 0 else None for member in record.members)
    refit = dataclasses.replace(record, refit=folders)
    write_record(run.path, refit)
    return refit


def check_refittable(run: RunDir, record: EnsembleRecord) -> None:
    """Only models made of search trials, each one training run of its configuration, are refit: a soup, a student,
    members trained after the search (bagging, seeds, boosting) or trials that population-based training changed while
    they trained came from steps a refit cannot replay."""
    if record.refit:
        raise HpsearchError(f"{record.name!r} is a refit already; refit the model it was made from: "
                            f"`hpsearch refit {run.path} --model {record.name.removesuffix(REFIT_SUFFIX)}`.")
    if not record.of_trials:
        raise HpsearchError(f"refit retrains search trials, and {record.name!r} is made of models trained after the "
                            f"search; refit best or an ensemble of trials (average, vote, greedy, stacking), e.g. "
                            f"`hpsearch refit {run.path} --model best`.")
    if run.config.get("budget", {}).get("scheduler") == "pbt":
        raise HpsearchError(f"{str(run.path)!r} was searched with population-based training, whose trials took other "
                            f"trials' weights and changed their settings while they trained: a refit from the final "
                            f"settings would be a model nobody validated. Ship {record.name} itself.")


def drop_stale_refit(run: RunDir, record: EnsembleRecord) -> None:
    """After ``record`` was (re)built, remove its refit if that was made of another version of it (other members,
    weights, views or temperature); the retrained members stay on disk for the next ``hpsearch refit``."""
    path = run.ensemble_path(f"{record.name}{REFIT_SUFFIX}")
    if path.is_file() and not read_record(path).same_model(record):
        path.unlink()
        log.info("%s changed, so its refit was removed: run `hpsearch refit %s --model %s` again (members already "
                 "retrained are reused)", record.name, run.path, record.name)


def refit_data(run: RunDir) -> TrialData:
    """The run's training data with the validation images added to the training images."""
    data = run.trial_data()
    both = ImageArrays(np.concatenate([data.train.images, data.val.images]),
                       np.concatenate([data.train.labels, data.val.labels]))
    return dataclasses.replace(data, train=both)


def refit_member(run: RunDir, member: Member, data: TrialData) -> str:
    """Retrain one trial on ``data`` up to its best epoch; its folder, relative to the run. A folder
    already holding this configuration's refit is kept (a refit run again, or a trial shared by two models)."""
    source = run.member_model(member)
    config, epochs = source.config, int(source.info["epoch"])
    if not 0 < epochs <= config.epochs:
        raise HpsearchError(f"{str(source.folder)!r} says its best epoch is {epochs} of a {config.epochs}-epoch "
                            f"schedule; the folder is damaged. Re-run the search that wrote it.")
    folder = run.path / REFIT_DIR / str(member.trial_id)
    if is_refit_of(folder, config, epochs):
        log.info("refit: trial %s was refit already (%s)", member.trial_id, folder)
        return str(folder.relative_to(run.path))
    trainer = Trainer(config, data)
    log.info("refit: trial %s (%s) on %d training + validation images for %d of its %d epochs", member.trial_id,
             config.backbone, len(data.train), epochs, config.epochs)
    state = trainer.train_without_validation(epochs)
    last = trainer.history[-1]
    save_refit_folder(folder, state, config, epochs, trainer.mean, trainer.std, trained_on=TRAINED_ON,
                      images=len(data.train), refit_of=str(member.trial_id), train_acc=last["train_acc"],
                      train_loss=last["train_loss"], seconds=sum(h["epoch_seconds"] for h in trainer.history))
    return str(folder.relative_to(run.path))


def is_refit_of(folder: Path, config: TrialConfig, epochs: int) -> bool:
    """Whether ``folder`` holds a whole refit of ``config`` trained for ``epochs`` (configurations compared as
    ``TrialConfig``: a field added since, at its default, is the same configuration)."""
    if not ((folder / BEST_FILE).is_file() and (folder / MODEL_FILE).is_file()):
        return False
    info = read_json(folder / BEST_FILE)
    if info.get("trained_on") != TRAINED_ON or info.get("epoch") != epochs:
        return False
    try:
        return TrialConfig.from_dict(info.get("config") or {}) == config
    except RecipeError:  # written by a version with fields this one does not know
        return False
