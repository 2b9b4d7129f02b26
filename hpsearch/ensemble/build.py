"""``hpsearch ensemble``: make every requested model of the top trials, score each honestly on validation data.

Each method is fit twice when test-time augmentation is on: on the members' plain validation probabilities and
on their test-time-augmented ones (``<method>+tta``). Every variant gets a temperature (fit on validation) and
out-of-fold scores: methods that learn from validation predictions are refit on k-1 folds and scored on the
held-out fold, so ``val_accuracy_oof`` compares like with like, and it alone chooses (``rundir.rank_models``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ensembles import TemperatureScaling, log_loss, stratified_folds
from hpsearch.config import parse_choices
from hpsearch.ensemble.methods import METHODS, EnsembleOptions, FitContext, Fitted, get_method, used_positions
from hpsearch.ensemble.refit import drop_stale_refit
from hpsearch.ensemble.selection import ordered_records
from hpsearch.errors import HpsearchError
from hpsearch.io import atomic_save
from hpsearch.rundir import (
    BEST_SINGLE,
    ENSEMBLE_COLUMNS,
    ENSEMBLES_FILE,
    EnsembleRecord,
    RunDir,
    rank_models,
    write_record,
    write_table,
)
from hpsearch.training import TTA_VIEWS, default_tta_views, tta_cost

log = logging.getLogger(__name__)
BOOTSTRAP_RESAMPLES = 2000


def parse_methods(text: str) -> list[str]:
    return parse_choices(text, tuple(m for m in METHODS if m != BEST_SINGLE), "--methods")


def parse_views(text: str) -> tuple[str, ...]:
    """``--tta flip,scale`` (or ``none``)."""
    if text.strip().lower() in ("none", "off", ""):
        return ()
    return tuple(parse_choices(text, TTA_VIEWS, "--tta"))


def fit_context(run: RunDir, options: EnsembleOptions) -> FitContext:
    top = run.ranked_trials().head(options.top_k)
    members = [run.trial_model(t) for t in top["trial_id"]]
    return FitContext(run, members, top, run.arrays("val"), options)


def default_views(ctx: FitContext) -> tuple[str, ...]:
    """Mirror images where the best trial was trained on mirrored ones, else small shifts."""
    return default_tta_views(ctx.best.config.flip)


def cross_fit_temperature(oof: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Out-of-fold probabilities calibrated by temperatures fit on the other folds."""
    out = np.empty_like(oof)
    for train, held_out in folds:
        out[held_out] = TemperatureScaling().fit(oof[train], y[train]).predict_proba(oof[held_out])
    return out


def score(method_name: str, ctx: FitContext, fitted: Fitted,
          folds: list[tuple[np.ndarray, np.ndarray]]) -> tuple[EnsembleRecord, np.ndarray]:
    """The record with its temperature and out-of-fold scores, and its out-of-fold probabilities."""
    oof = get_method(method_name).oof(ctx, fitted)
    # fit on out-of-fold probabilities: a method fit on validation is overconfident on it, not on new images
    temperature = TemperatureScaling().fit(oof, ctx.y).temperature_
    record = replace(fitted.record, temperature=temperature, val_accuracy_oof=float((oof.argmax(1) == ctx.y).mean()),
                     val_log_loss_oof=log_loss(cross_fit_temperature(oof, ctx.y, folds), ctx.y))
    return record, oof


def bootstrap_interval(statistic: Callable[[np.ndarray], float], n: int, seed: int,
                       resamples: int = BOOTSTRAP_RESAMPLES, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(indices)`` over ``resamples`` draws of ``n`` indices with
    replacement. A statistic that compares two models on the same indices makes it a paired bootstrap. Draws are
    made one resample at a time: memory grows with ``n``, not with ``resamples x n``."""
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.fromiter((statistic(rng.integers(0, n, n)) for _ in range(resamples)), np.float64, resamples)
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def paired_bootstrap(correct: np.ndarray, reference: np.ndarray, seed: int,
                     resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float, float]:
    """Accuracy gain over ``reference`` on the same images, with its 95% percentile interval."""
    diff = correct.astype(np.float64) - reference.astype(np.float64)
    low, high = bootstrap_interval(lambda picked: diff[picked].mean(), len(diff), seed, resamples)
    return float(diff.mean()), low, high


def relative_cost(record: EnsembleRecord) -> int:
    """Forward passes per image, against one pass of one model."""
    return len(used_positions(record)) * tta_cost(record.tta)


def build_ensembles(run_dir: Path, methods: list[str], options: EnsembleOptions) -> pd.DataFrame:
    """Fit every method in ``methods`` (and the best single trial) on validation predictions, with and without
    test-time views, in the registry's order (a method that draws on others' members comes after them); write
    ``ensembles/<model>.json`` and ``ensembles.csv``."""
    run = RunDir(run_dir)
    ctx = fit_context(run, options)
    views = default_views(ctx) if options.tta is None else options.tta
    folds = stratified_folds(ctx.y, options.folds, run.seed)
    requested = {get_method(name).name for name in methods}  # an unknown name is an error that lists the choices
    for name in requested:
        get_method(name).check_options(options)
    for name in [BEST_SINGLE, *[m for m in METHODS if m in requested and m != BEST_SINGLE]]:  # registry order
        for variant in ((), views) if views else ((),):
            vctx = ctx.with_views(variant)
            save_scored(run, *score(name, vctx, get_method(name).fit(vctx), folds))
    return write_summary(run, ctx.y)


def save_scored(run: RunDir, record: EnsembleRecord, oof: np.ndarray) -> None:
    """Save a scored model: its record and its out-of-fold validation probabilities."""
    write_record(run.path, record)
    drop_stale_refit(run, record)
    atomic_save(run.oof_path(record.name), lambda f: np.save(f, oof.astype(np.float32)))
    log.info("%s: %d model(s) run, val_accuracy %.4f (out-of-fold %.4f)", record.name,
             len(used_positions(record)), record.val_accuracy, record.val_accuracy_oof)


def write_summary(run: RunDir, y: np.ndarray) -> pd.DataFrame:
    """``ensembles.csv`` from every scored model of the run (those made before out-of-fold scores existed are
    left out: rebuild them with ``hpsearch ensemble``)."""
    scored = [(r, np.load(run.oof_path(r.name))) for r in ordered_records(run) if run.oof_path(r.name).is_file()]
    if not scored or scored[0][0].method != BEST_SINGLE:
        raise HpsearchError(f"ensembles.csv compares every model with the best single trial, whose scores predate "
                            f"this version: rebuild them with `hpsearch ensemble {run.path}`.")
    table = summary_table(scored, y, run.seed)
    write_table(run.path / ENSEMBLES_FILE, table)
    return table


def summary_table(results: list[tuple[EnsembleRecord, np.ndarray]], y: np.ndarray, seed: int) -> pd.DataFrame:
    """One row per model; the gain of each over the best single trial, out of fold, with a bootstrap interval."""
    reference = results[0][1].argmax(1) == y
    rows = []
    for record, oof in results:
        gain, low, high = paired_bootstrap(oof.argmax(1) == y, reference, seed)
        rows.append({"model": record.name, "method": record.method, "tta": "+".join(record.tta),
                     "members": len(used_positions(record)),
                     "relative_cost": relative_cost(record), "val_accuracy": record.val_accuracy,
                     "val_log_loss": record.val_log_loss, "val_accuracy_oof": record.val_accuracy_oof,
                     "val_log_loss_oof": record.val_log_loss_oof, "temperature": record.temperature,
                     "oof_gain_vs_best_single": gain, "oof_gain_ci_low": low, "oof_gain_ci_high": high})
    table = pd.DataFrame(rows)
    best_variant = rank_models(table).drop_duplicates("method").set_index("method")["model"]
    table["variant_chosen"] = table["model"].isin(set(best_variant))
    table["chosen"] = table["model"] == rank_models(table).iloc[0]["model"]
    return table[ENSEMBLE_COLUMNS]
