"""``hpsearch ensemble``: combine the top trials of a search; everything is fit on validation data."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ensembles import (AdaBoostSAMME, Bagging, GreedySelection, HardVoting, SoftVoting, Stacking,
                       bootstrap_indices, samme_step)
from hpsearch.config import parse_choices
from hpsearch.errors import HpsearchError
from hpsearch.evaluation.rundir import RunDir, SavedModel
from hpsearch.evaluation.soups import build_soups
from hpsearch.io import atomic_write, write_json

METHODS = ("average", "vote", "greedy", "stacking", "bagging", "boosting", "soup")
ESTIMATORS = {"SoftVoting": SoftVoting, "HardVoting": HardVoting, "GreedySelection": GreedySelection,
              "Stacking": Stacking, "Bagging": Bagging, "AdaBoostSAMME": AdaBoostSAMME}


@dataclasses.dataclass
class EnsembleOptions:
    top_k: int = 5
    members: int = 5
    member_epochs: int | None = None
    cpus_per_member: float = 1.0
    address: str | None = None


def parse_methods(text: str) -> list[str]:
    return parse_choices(text, METHODS, "--methods")


def spec(method: str, estimator, members: list[SavedModel], run: RunDir, stack: np.ndarray, y: np.ndarray,
         **details: Any) -> dict[str, Any]:
    """The JSON record of one ensemble: how to rebuild it, its members and weights, its validation scores."""
    probas = estimator.predict_proba(stack)
    picked = np.clip(probas[np.arange(len(y)), y], 1e-15, 1.0)
    weights = getattr(estimator, "weights_", np.full(len(members), 1.0 / len(members)))
    return {
        "method": method, "estimator": type(estimator).__name__, "params": estimator.get_params(),
        "members": [{"name": m.name, "path": str(m.folder.relative_to(run.path)), "weight": float(w)}
                    for m, w in zip(members, weights)],
        "val_accuracy": float((probas.argmax(1) == y).mean()), "val_log_loss": float(-np.log(picked).mean()),
        **details,
    }


def probability_ensembles(method: str, members: list[SavedModel], run: RunDir, y: np.ndarray) -> dict:
    stack = np.stack([m.val_probs for m in members])
    seed = run.seed
    if method == "average":
        return spec(method, SoftVoting().fit(stack, y), members, run, stack, y)
    if method == "vote":
        return spec(method, HardVoting().fit(stack, y), members, run, stack, y)
    if method == "greedy":
        model = GreedySelection(max_size=25, random_state=seed).fit(stack, y)
        return spec(method, model, members, run, stack, y, trajectory=model.trajectory_, best_step=model.best_step_)
    model = Stacking(cv=5, random_state=seed).fit(stack, y)
    return spec(method, model, members, run, stack, y, cv_accuracy=model.cv_accuracy_,
                note="val_accuracy is in-sample for the meta-learner; cv_accuracy is its out-of-fold estimate")


def member_config(best: SavedModel, options: EnsembleOptions, best_row: pd.Series):
    epochs = options.member_epochs or int(best_row["epochs"])
    return dataclasses.replace(best.config, epochs=epochs)


def bagging(run: RunDir, best: SavedModel, best_row: pd.Series, options: EnsembleOptions, data, y_val) -> dict:
    from hpsearch.search.members import train_members

    config = member_config(best, options, best_row)
    samples = bootstrap_indices(data.train.labels, options.members, random_state=run.seed)
    print(f"bagging: training {options.members} members of trial {best.name} ({config.backbone}, "
          f"{config.epochs} epochs) on bootstrap resamples, as Ray Tune trials")
    folders = train_members([config] * options.members, data, run.path / "ensembles" / "bagging", samples=samples,
                            cpus_per_member=options.cpus_per_member, address=options.address)
    members = [SavedModel(f"bagging:{f.name}", f) for f in folders]
    stack = np.stack([m.val_probs for m in members])
    return spec("bagging", Bagging().fit(stack, y_val), members, run, stack, y_val, base_trial=best.name,
                member_epochs=config.epochs)


def boosting(run: RunDir, best: SavedModel, best_row: pd.Series, options: EnsembleOptions, data, y_val) -> dict:
    from hpsearch.search.trainable import save_best
    from hpsearch.training import Trainer

    config = member_config(best, options, best_row)
    n_classes, labels = len(run.classes), data.train.labels
    weight = np.full(len(labels), 1.0 / len(labels))
    rng = np.random.default_rng(run.seed)
    folder = run.path / "ensembles" / "boosting"
    members, alphas, errors = [], [], []
    for k in range(options.members):
        index = np.sort(rng.choice(len(labels), size=len(labels), replace=True, p=weight))
        resampled = dataclasses.replace(data, train=type(data.train)(data.train.images[index], labels[index]))
        trainer = Trainer(dataclasses.replace(config, seed=config.seed + 1000 + k), resampled,
                          threads=os.cpu_count())
        outcome = trainer.fit()
        trainer.model.load_state_dict(outcome.best.state_dict)
        train_pred = trainer.predict(data.train).argmax(1)
        alpha, new_weight, error = samme_step(weight, labels, train_pred, n_classes)
        print(f"boosting: member {k + 1}/{options.members}: weighted training error {error:.4f}, alpha {alpha:.3f}, "
              f"val_acc {outcome.best.val_acc:.4f}")
        if alpha == 0.0:
            print("boosting: member no better than chance on the reweighted data; stopping")
            break
        member_dir = folder / f"member_{k}"
        member_dir.mkdir(parents=True, exist_ok=True)
        save_best(member_dir, outcome.best, trainer.config, None, trainer.mean, trainer.std)
        members.append(SavedModel(f"boosting:member_{k}", member_dir))
        alphas.append(alpha)
        errors.append(error)
        weight = new_weight
        if error <= 1e-10:
            break
    if not members:
        raise HpsearchError("boosting: no member beat chance on the training data; nothing to combine.")
    model = AdaBoostSAMME.from_rounds(alphas, n_classes, errors)
    stack = np.stack([m.val_probs for m in members])
    return spec("boosting", model, members, run, stack, y_val, alphas=alphas, train_errors=errors,
                base_trial=best.name, member_epochs=config.epochs)


def build_ensembles(run_dir: Path, methods: list[str], options: EnsembleOptions) -> pd.DataFrame:
    """Fit every method in ``methods`` on validation predictions; write ``ensembles/<method>.json`` and ``ensembles.csv``."""
    run = RunDir(run_dir)
    ranked = run.ranked_trials()
    top = ranked.head(options.top_k)
    members = [run.trial_model(t) for t in top["trial_id"]]
    best, best_row = members[0], top.iloc[0]
    val = run.arrays("val")
    y_val = val.labels
    data = None
    rows = []
    for method in methods:
        if method in ("average", "vote", "greedy", "stacking"):
            record = probability_ensembles(method, members, run, y_val)
        elif method == "soup":
            record = build_soups(run, members, top, val)
        else:
            if data is None:
                from hpsearch.data import TrialData

                train = run.arrays("train")
                mean, std = run.data_config.mean_std
                data = TrialData(train, val, tuple(run.classes), mean, std, run.data_config.normalize)
            record = (bagging if method == "bagging" else boosting)(run, best, best_row, options, data, y_val)
        write_json(run.path / "ensembles" / f"{method}.json", record)
        used = sum(m["weight"] > 0 for m in record["members"])
        rows.append({"method": method, "members": used, "val_accuracy": record["val_accuracy"],
                     "val_log_loss": record["val_log_loss"], "cv_accuracy": record.get("cv_accuracy")})
        print(f"{method}: {used} member(s) with weight, val_accuracy {record['val_accuracy']:.4f}")
    table = pd.DataFrame(rows)
    single = {"method": "best_single", "members": 1, "val_accuracy": float(best_row["val_acc"]),
              "val_log_loss": float(best_row["val_loss"]), "cv_accuracy": None}
    table = pd.concat([pd.DataFrame([single]), table], ignore_index=True)
    atomic_write(run.path / "ensembles.csv", table.to_csv(index=False))
    return table
