"""Result tables from a run directory, written in every format a paper or a README needs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from hpsearch.config import parse_choices
from hpsearch.io import atomic_write
from hpsearch.rundir import TEST_SUMMARY_COLUMNS, TRIAL_COLUMNS, parameter_columns, rank_trials, read_table

FORMATS = ("md", "csv", "tex", "html", "json")
LEADERBOARD_HIDDEN = {"optuna_trial", "node_id", "error", "checkpoint"}  # trials.csv columns a paper needs not


def parse_formats(text: str) -> list[str]:
    return parse_choices(text, FORMATS, "--formats")


def render(table: pd.DataFrame, fmt: str, caption: str = "") -> str:
    """One table as text in ``fmt``; floats get 4 decimals except in CSV and JSON (exact)."""
    if fmt == "csv":
        return table.to_csv(index=False)
    if fmt == "json":
        return table.to_json(orient="records", indent=2, double_precision=15) + "\n"
    shown = table.copy()
    for column in shown.select_dtypes("float").columns:
        shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.4f}")
    if fmt == "md":
        return shown.to_markdown(index=False) + "\n"
    if fmt == "html":
        return shown.to_html(index=False, na_rep="", border=0, classes="table") + "\n"
    return shown.to_latex(index=False, escape=True, caption=caption or None, na_rep="") + "\n"


def write_table(table: pd.DataFrame, name: str, folder: Path, formats: list[str], caption: str = "") -> list[Path]:
    paths = []
    for fmt in formats:
        paths.append(atomic_write(folder / f"{name}.{fmt}", render(table, fmt, caption)))
    return paths


def read_back(path: Path) -> pd.DataFrame:
    """Read a CSV or JSON table written by ``write_table``."""
    if path.suffix == ".json":
        return pd.DataFrame(json.loads(path.read_text()))
    return read_table(path)


def leaderboard(trials: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    ranked = rank_trials(trials)
    results = [c for c in TRIAL_COLUMNS[1:] if c in trials.columns and c not in LEADERBOARD_HIDDEN]
    columns = ["trial_id", *parameter_columns(trials), *results]
    table = ranked[columns].head(top).reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    return table


def ensemble_comparison(test_metrics: pd.DataFrame) -> pd.DataFrame:
    return test_metrics[[c for c in TEST_SUMMARY_COLUMNS if c in test_metrics.columns]].copy()


def importance(study) -> pd.DataFrame | None:
    """Optuna's fANOVA importance of each sampled parameter, or None with fewer than 2 finished trials."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    finished = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(finished) < 2 or not any(t.params for t in finished):
        return None
    try:
        scores = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    except (RuntimeError, ValueError):
        return None
    return pd.DataFrame({"parameter": list(scores), "importance": list(scores.values())})
