"""Ensembles that train new members: bagging (bootstrap resamples, in parallel through Ray Tune), seeds (the best
configuration trained again on all training images from other random seeds, in parallel too) and SAMME boosting (in
sequence, each member on training data reweighted by the previous ones' mistakes); and the library, greedy
selection over the top trials and those trained members together."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from ensembles import AdaBoostSAMME, Bagging, bootstrap_indices, samme_step
from hpsearch.ensemble.methods import (
    Average,
    EnsembleMethod,
    EnsembleOptions,
    FitContext,
    Fitted,
    Greedy,
    make_record,
    register_method,
)
from hpsearch.errors import HpsearchError
from hpsearch.rundir import ENSEMBLES_DIR, EnsembleRecord, RunDir, SavedModel, save_model_folder
from hpsearch.training import Trainer, TrialConfig

log = logging.getLogger(__name__)


def member_config(ctx: FitContext) -> TrialConfig:
    """The best trial's configuration, trained for ``--member-epochs`` or else the best trial's own epochs."""
    epochs = ctx.options.member_epochs or int(ctx.best_row["epochs"])
    return dataclasses.replace(ctx.best.config, epochs=epochs)


@register_method
class BaggingMethod(EnsembleMethod):
    """The best configuration retrained on stratified bootstrap resamples of the training split, averaged."""

    name, learns_from_validation, position = "bagging", False, 50

    def train(self, ctx: FitContext) -> list[SavedModel]:
        from hpsearch.search.grid import train_grid

        config, count = member_config(ctx), ctx.options.members
        samples = bootstrap_indices(ctx.trial_data.train.labels, count, random_state=ctx.run.seed)
        log.info("bagging: training %d members of %s (%s, %d epochs) on bootstrap resamples, as Ray Tune "
                 "trials", count, ctx.best.name, config.backbone, config.epochs)
        folders = train_grid([config] * count, ctx.trial_data, ctx.run.path / ENSEMBLES_DIR / self.name,
                             samples=samples, cpus_per_run=ctx.options.cpus_per_member, address=ctx.options.address)
        return [SavedModel(f"bagging:{f.name}", f) for f in folders]

    def fit(self, ctx: FitContext) -> Fitted:
        models = ctx.remember(self.name, lambda: self.train(ctx))
        stack = ctx.stack(models)
        estimator = Bagging().fit(stack, ctx.y)
        return make_record(ctx, self.name, estimator, models, estimator.predict_proba(stack),
                           base_trial=ctx.best.name, member_epochs=member_config(ctx).epochs)

    def estimator(self, record: EnsembleRecord, val_stack: np.ndarray | None, y_val: np.ndarray) -> Bagging:
        return Bagging().fit(val_stack)


SEED_OFFSET = 2000  # seeds' k-th retrained member trains with the best trial's seed + 2000 + k (boosting: 1000)


@register_method
class SeedsMethod(Average):
    """The best configuration from ``--members`` random seeds, averaged: the best trial itself and ``members - 1``
    runs of its configuration trained again on every training image, each with its own seed (initial weights,
    batch order, augmentation). A "deep ensemble" (Lakshminarayanan et al., 2017): unlike bagging, no member loses
    the third of the images a bootstrap resample leaves out, which costs a network trained from scratch on a few
    thousand images several points. The average of another pool, as the library is greedy's."""

    name, position = "seeds", 55

    def check_options(self, options: EnsembleOptions) -> None:
        if options.members < 2:
            raise HpsearchError(f"seeds needs --members 2 or more (got {options.members}): the best trial is one "
                                f"member, the others are trained from other seeds.")

    def train(self, ctx: FitContext) -> list[SavedModel]:
        from hpsearch.search.grid import train_grid

        config = member_config(ctx)
        seeds = [config.seed + SEED_OFFSET + k for k in range(1, ctx.options.members)]
        configs = [dataclasses.replace(config, seed=seed) for seed in seeds]
        log.info("seeds: training %d more runs of %s (%s, %d epochs) from other seeds, as Ray Tune trials",
                 len(configs), ctx.best.name, config.backbone, config.epochs)
        folders = train_grid(configs, ctx.trial_data, ctx.run.path / ENSEMBLES_DIR / self.name,
                             cpus_per_run=ctx.options.cpus_per_member, address=ctx.options.address)
        return [SavedModel(f"seeds:{f.name}", f) for f in folders]

    def pool(self, ctx: FitContext) -> list[SavedModel]:
        return [ctx.best, *ctx.remember(self.name, lambda: self.train(ctx))]

    def fit(self, ctx: FitContext) -> Fitted:
        fitted = super().fit(ctx)
        details = {**fitted.record.details, "base_trial": ctx.best.name, "member_epochs": member_config(ctx).epochs,
                   **best_trial_against_reruns(ctx, self.pool(ctx)[1:])}
        return dataclasses.replace(fitted, record=dataclasses.replace(fitted.record, details=details))


def best_trial_against_reruns(ctx: FitContext, retrained: list[SavedModel]) -> dict[str, float]:
    """The best trial's out-of-fold validation accuracy and the mean of runs of its configuration from other seeds.
    The search kept the best trial for its score on these images, luck included (of its training run, or on these
    images); the retrained runs were kept for nothing, and their mean is what one run of the configuration scores."""
    def accuracy(model: SavedModel) -> float:
        return float((ctx.oof_probs(model).argmax(1) == ctx.y).mean())

    best, reruns = accuracy(ctx.best), float(np.mean([accuracy(m) for m in retrained]))
    log.info("seeds%s: the best trial scores %.4f out of fold on validation, runs of its configuration from other "
             "seeds %.4f on average (%+.1f points: the luck of the run the search kept)",
             "+tta" if ctx.views else "", best, reruns, 100 * (best - reruns))
    return {"best_trial_val_accuracy_oof": best, "reruns_val_accuracy_oof": reruns}


@dataclass
class Rounds:
    """What SAMME boosting trained: the members and each round's weight and weighted training error."""

    models: list[SavedModel]
    alphas: list[float]
    errors: list[float]


@register_method
class BoostingMethod(EnsembleMethod):
    """SAMME (multi-class AdaBoost): members trained in sequence on weight-resampled training data; each
    member's vote weight comes from its weighted error on the training split, never from validation."""

    name, learns_from_validation, position = "boosting", False, 60

    def train(self, ctx: FitContext) -> Rounds:
        config, data = member_config(ctx), ctx.trial_data
        labels, n_classes = data.train.labels, len(ctx.run.classes)
        weight = np.full(len(labels), 1.0 / len(labels))
        rng = np.random.default_rng(ctx.run.seed)
        rounds = Rounds([], [], [])
        for k in range(ctx.options.members):
            index = np.sort(rng.choice(len(labels), size=len(labels), replace=True, p=weight))
            resampled = dataclasses.replace(data, train=type(data.train)(data.train.images[index], labels[index]))
            trainer = Trainer(dataclasses.replace(config, seed=config.seed + 1000 + k), resampled)
            outcome = trainer.fit()
            trainer.load_weights(outcome.best.state_dict)
            alpha, new_weight, error = samme_step(weight, labels, trainer.predict(data.train).argmax(1), n_classes)
            log.info("boosting: member %d/%d: weighted training error %.4f, alpha %.3f, val_acc %.4f", k + 1,
                     ctx.options.members, error, alpha, outcome.best.val_acc)
            if alpha == 0.0:
                log.info("boosting: member no better than chance on the reweighted data; stopping")
                break
            folder = ctx.run.path / ENSEMBLES_DIR / self.name / f"member_{k}"
            save_model_folder(folder, outcome.best, trainer.config, None, trainer.mean, trainer.std,
                              trainer.epoch_choice_probs())
            rounds.models.append(SavedModel(f"boosting:member_{k}", folder))
            rounds.alphas.append(alpha)
            rounds.errors.append(error)
            weight = new_weight
            if error <= 1e-10:
                break
        if not rounds.models:
            raise HpsearchError("boosting: no member beat chance on the training data; nothing to combine.")
        return rounds

    def fit(self, ctx: FitContext) -> Fitted:
        rounds = ctx.remember(self.name, lambda: self.train(ctx))
        estimator = AdaBoostSAMME.from_rounds(rounds.alphas, len(ctx.run.classes), rounds.errors)
        probas = estimator.predict_proba(ctx.stack(rounds.models))
        return make_record(ctx, self.name, estimator, rounds.models, probas, alphas=rounds.alphas,
                           train_errors=rounds.errors, base_trial=ctx.best.name,
                           member_epochs=member_config(ctx).epochs)

    def estimator(self, record: EnsembleRecord, val_stack: np.ndarray | None, y_val: np.ndarray) -> AdaBoostSAMME:
        alphas, errors = record.details["alphas"], record.details.get("train_errors")
        return AdaBoostSAMME.from_rounds(alphas, val_stack.shape[2], errors)


TRAINING_METHODS = (BaggingMethod.name, SeedsMethod.name, BoostingMethod.name)  # whose members the library draws on


def trained_members(run: RunDir) -> list[SavedModel]:
    """Every member that bagging, seeds and boosting trained in ``run`` (read from their records), each once (the
    best trial, a member of seeds, is one of the top trials already)."""
    records, found = run.records(), {}
    for method in TRAINING_METHODS:
        if method in records:
            for member in records[method].members:
                if member.trial_id is None:
                    found.setdefault(member.path, run.member_model(member))
    return list(found.values())


@register_method
class Library(Greedy):
    """Greedy ensemble selection (Caruana et al., 2004) from a library of models: the top trials plus every
    member bagging, seeds and boosting trained, each a full training run of the best configuration. Runs after them
    in one call, or on their saved members later (``--methods library``) without training anything."""

    name, position = "library", 65

    def pool(self, ctx: FitContext) -> list[SavedModel]:
        trained = ctx.remember("library_pool", lambda: trained_members(ctx.run))
        if not trained:
            raise HpsearchError(f"The library draws on the members that bagging, seeds and boosting train, and "
                                f"{str(ctx.run.path)!r} has none: run `hpsearch ensemble {ctx.run.path} --methods "
                                f"bagging,boosting,library` (or use greedy, which draws on the top trials only).")
        return [*ctx.members, *trained]
