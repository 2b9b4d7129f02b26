"""``hpsearch distill``: one student network trained on a teacher ensemble's soft targets plus the labels.

The teacher's probabilities come from the training images (and the choice of teacher from validation); the
test split is never read. The student is saved as ``ensembles/distilled/``, a model like any other: scored out
of fold, with and without test-time views, and usable by ``evaluate``, ``predict``, ``report`` and ``export``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from ensembles import scale_probabilities, stratified_folds
from hpsearch.data import ImageArrays
from hpsearch.ensemble.build import default_views, fit_context, save_scored, score, write_summary
from hpsearch.ensemble.methods import (
    EnsembleOptions,
    FitContext,
    Fitted,
    SingleModelMethod,
    combiner_input,
    ensemble_combiner,
    make_record,
    record_models,
    register_method,
    used_positions,
)
from hpsearch.ensemble.selection import resolve_model
from hpsearch.errors import HpsearchError
from hpsearch.models import pip_weights_for
from hpsearch.rundir import (
    BEST_FILE,
    ENSEMBLES_DIR,
    REFIT_SUFFIX,
    EnsembleRecord,
    RunDir,
    SavedModel,
    save_model_folder,
)
from hpsearch.training import Distillation, Trainer, TrialConfig

log = logging.getLogger(__name__)
DISTILLED = "distilled"


@register_method
class DistilledMethod(SingleModelMethod):
    """The student ``hpsearch distill`` trained; ``ensemble`` (re)scores it if it exists."""

    name, learns_from_validation, position = DISTILLED, False, 80

    def build_command(self, run_dir: str) -> str:
        return f"hpsearch distill {run_dir} --teacher auto"

    def fit(self, ctx: FitContext) -> Fitted:
        folder = ctx.run.path / ENSEMBLES_DIR / DISTILLED
        if not (folder / BEST_FILE).is_file():
            raise HpsearchError(f"No distilled student in {str(ctx.run.path)!r}: make one with "
                                f"`{self.build_command(str(ctx.run.path))}`.")
        student = SavedModel(DISTILLED, folder)
        info = student.info
        return make_record(ctx, self.name, "SingleModel", [student], ctx.probs(student), params={},
                           model=str(folder.relative_to(ctx.run.path)), teacher=info.get("teacher"),
                           student=student.config.backbone, distill_alpha=info.get("distill_alpha"),
                           distill_temperature=info.get("distill_temperature"))


def teacher_probs(run: RunDir, record: EnsembleRecord, arrays: ImageArrays, y_val: np.ndarray) -> np.ndarray:
    """The teacher's calibrated class probabilities of ``arrays`` (with its test-time views)."""
    models = record_models(run, record)
    probs = {i: run.predict(models[i], arrays, record.tta) for i in used_positions(record)}
    stack = combiner_input(probs, len(models))
    return scale_probabilities(ensemble_combiner(run, record, y_val)(stack), record.temperature)


def student_config(run: RunDir, student: str, epochs: int | None) -> tuple[TrialConfig, SavedModel | None]:
    """The student's configuration, and the model whose weights it starts from (``best``: the best trial's)."""
    best, row = run.best_model(), run.ranked_trials().iloc[0]
    config = dataclasses.replace(best.config, mixup_alpha=0.0, cutmix_alpha=0.0, freeze_epochs=0,
                                 epochs=epochs or int(row["epochs"]))
    if student == "best":
        return config, best
    weights = pip_weights_for(student) if config.pretrained else None
    return dataclasses.replace(config, backbone=student, pretrained=weights is not None, weights=weights,
                               frozen_blocks=0, layer_decay=None), None


def distill_run(run_dir: Path, teacher: str = "auto", student: str = "best", epochs: int | None = None,
                alpha: float = 0.7, temperature: float = 2.0, options: EnsembleOptions | None = None) -> EnsembleRecord:
    """Train the student, save it as ``ensembles/distilled``, score it and add it to ``ensembles.csv``."""
    run = RunDir(run_dir)
    if run.ensembles_table() is None:
        raise HpsearchError(f"distill learns from an ensemble: run `hpsearch ensemble {run.path}` first, then "
                            f"`hpsearch distill {run.path} --teacher auto`.")
    if not (0.0 <= alpha <= 1.0 and temperature > 0):
        raise HpsearchError(f"--alpha must be in [0, 1] and --temperature positive, but got {alpha=}, {temperature=}.")
    record = resolve_model(run, teacher)
    if record.refit:
        raise HpsearchError(f"{record.name!r} learned from the validation images, on which its student is scored and "
                            f"chosen: name the model it refits (--teacher {record.name.removesuffix(REFIT_SUFFIX)}).")
    ctx = fit_context(run, options or EnsembleOptions())
    data = dataclasses.replace(run.trial_data(), val=ctx.val)
    log.info("distill: computing %s's probabilities of the %d training images", record.name, len(data.train))
    targets = teacher_probs(run, record, data.train, ctx.y)
    config, start = student_config(run, student, epochs)
    trainer = Trainer(config, data, distill=Distillation(targets, alpha, temperature))
    if start is not None:
        trainer.load_weights(start.state_dict())
    log.info("distill: training %s for %d epochs on %s's soft targets (alpha %.2f, temperature %.1f)",
             config.backbone, config.epochs, record.name, alpha, temperature)
    outcome = trainer.fit()
    folder = run.path / ENSEMBLES_DIR / DISTILLED
    save_model_folder(folder, outcome.best, trainer.config, None, trainer.mean, trainer.std,
                      trainer.epoch_choice_probs(), teacher=record.name,
                      distill_alpha=alpha, distill_temperature=temperature, started_from=getattr(start, "name", None))
    return score_student(run, ctx)


def score_student(run: RunDir, ctx: FitContext) -> EnsembleRecord:
    views = default_views(ctx) if ctx.options.tta is None else ctx.options.tta
    folds = stratified_folds(ctx.y, ctx.options.folds, run.seed)
    method, plain = DistilledMethod(), None
    for variant in ((), views) if views else ((),):
        vctx = ctx.with_views(variant)
        scored = score(DISTILLED, vctx, method.fit(vctx), folds)
        save_scored(run, *scored)
        plain = plain or scored[0]
    write_summary(run, ctx.y)
    return plain
