"""``hpsearch compare``: one table across runs (recipes or datasets side by side)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hpsearch.rundir import BEST_SINGLE, TEST_METRICS_FILE, RunDir, rank_models, read_table


def run_row(run_dir: Path) -> dict:
    run = RunDir(run_dir)
    best = run.ranked_trials().iloc[0]
    backbone = best["backbone"] if "backbone" in best else run.config.get("train", {}).get("backbone")
    row = {"run": run.path.name, "recipe": run.config.get("name"), "trials": len(run.trials),
           "best_single_val_acc": float(best["val_acc"]), "best_backbone": backbone,
           "tune_wall_s": run.summary().get("wall_seconds")}
    table = run.ensembles_table()
    if table is not None:
        table = table[table["method"] != BEST_SINGLE]
        if len(table):
            chosen = rank_models(table).iloc[0]  # out-of-fold: in-sample scores favour what memorizes validation
            row.update({"best_ensemble_by_val": chosen["model"],
                        "best_ensemble_val_acc_oof": chosen["val_accuracy_oof"],
                        "best_ensemble_val_acc_in_sample": chosen["val_accuracy"]})
    if (run.path / TEST_METRICS_FILE).is_file():
        test = read_table(run.path / TEST_METRICS_FILE).set_index("model")
        for name, prefix in ((BEST_SINGLE, "single"), (row.get("best_ensemble_by_val"), "ensemble")):
            if name in test.index:
                row.update({f"{prefix}_test_acc": test.loc[name, "accuracy"],
                            f"{prefix}_ci_low": test.loc[name, "accuracy_ci_low"],
                            f"{prefix}_ci_high": test.loc[name, "accuracy_ci_high"]})
        shipped = test.index[test["ships"].astype(bool)] if "ships" in test.columns else []
        if len(shipped):  # the model --model auto gives: validation's choice, or its refit
            row.update({"shipped": shipped[0], "shipped_test_acc": test.loc[shipped[0], "accuracy"]})
    return row


def compare_runs(run_dirs: list[Path]) -> pd.DataFrame:
    """One row per run; the ensemble shown is the one with the best out-of-fold validation accuracy (chosen
    without test data, and without the in-sample scores of methods fit on validation)."""
    return pd.DataFrame([run_row(Path(d)) for d in run_dirs])
