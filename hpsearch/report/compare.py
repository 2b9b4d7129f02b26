"""``hpsearch compare``: one table across runs (recipes or datasets side by side)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from hpsearch.evaluation import RunDir


def run_row(run_dir: Path) -> dict:
    run = RunDir(run_dir)
    ranked = run.ranked_trials()
    summary = json.loads((run.path / "summary.json").read_text()) if (run.path / "summary.json").is_file() else {}
    row = {"run": run.path.name, "recipe": run.config.get("name"), "trials": len(run.trials),
           "best_single_val_acc": float(ranked.iloc[0]["val_acc"]), "best_backbone": ranked.iloc[0].get("backbone"),
           "tune_wall_s": summary.get("wall_seconds")}
    ensembles = run.path / "ensembles.csv"
    if ensembles.is_file():
        table = pd.read_csv(ensembles)
        table = table[table["method"] != "best_single"]
        if len(table):
            chosen = table.sort_values("val_accuracy", ascending=False).iloc[0]
            row.update({"best_ensemble_by_val": chosen["method"], "best_ensemble_val_acc": chosen["val_accuracy"]})
    metrics = run.path / "test_metrics.csv"
    if metrics.is_file():
        test = pd.read_csv(metrics).set_index("model")
        for name, prefix in (("best_single", "single"), (row.get("best_ensemble_by_val"), "ensemble")):
            if name in test.index:
                row.update({f"{prefix}_test_acc": test.loc[name, "accuracy"],
                            f"{prefix}_ci_low": test.loc[name, "accuracy_ci_low"],
                            f"{prefix}_ci_high": test.loc[name, "accuracy_ci_high"]})
    return row


def compare_runs(run_dirs: list[Path]) -> pd.DataFrame:
    """One row per run; the ensemble shown is the one with the best validation score (chosen without test data)."""
    return pd.DataFrame([run_row(Path(d)) for d in run_dirs])
