"""``hpsearch ensemble``: combine the top trials of a search; everything is fit on validation data."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from hpsearch.config import parse_choices
from hpsearch.ensemble.methods import METHODS, EnsembleOptions, FitContext, get_method
from hpsearch.rundir import BEST_SINGLE, ENSEMBLE_COLUMNS, ENSEMBLES_FILE, RunDir, write_record, write_table

log = logging.getLogger(__name__)


def parse_methods(text: str) -> list[str]:
    return parse_choices(text, tuple(METHODS), "--methods")


def fit_context(run: RunDir, options: EnsembleOptions) -> FitContext:
    top = run.ranked_trials().head(options.top_k)
    members = [run.trial_model(t) for t in top["trial_id"]]
    return FitContext(run, members, top, run.arrays("val"), options)


def build_ensembles(run_dir: Path, methods: list[str], options: EnsembleOptions) -> pd.DataFrame:
    """Fit every method in ``methods`` on validation predictions; write ``ensembles/<method>.json`` and
    ``ensembles.csv`` (the best single trial first, then one row per method)."""
    run = RunDir(run_dir)
    ctx = fit_context(run, options)
    rows = [{"method": BEST_SINGLE, "members": 1, "val_accuracy": float(ctx.best_row["val_acc"]),
             "val_log_loss": float(ctx.best_row["val_loss"]), "cv_accuracy": None}]
    for name in methods:
        record = get_method(name).fit(ctx)
        write_record(run.path, record)
        used = len(record.used_members())
        rows.append({"method": name, "members": used, "val_accuracy": record.val_accuracy,
                     "val_log_loss": record.val_log_loss, "cv_accuracy": record.details.get("cv_accuracy")})
        log.info("%s: %d member(s) with weight, val_accuracy %.4f", name, used, record.val_accuracy)
    table = pd.DataFrame(rows, columns=ENSEMBLE_COLUMNS)
    write_table(run.path / ENSEMBLES_FILE, table)
    return table
