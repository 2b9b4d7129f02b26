"""Benchmark 5: what each ensemble buys over the best single model, from a run's `hpsearch evaluate`.

    python -m benchmarks.ensemble_value RUN_DIR [--quick]

Reads RUN_DIR/test_metrics.csv (test accuracy with 95% bootstrap CIs, parameters, CPU milliseconds
per image) and writes the table with gains and cost ratios against the best single model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from benchmarks.common import write_results
from hpsearch.rundir import TEST_METRICS_FILE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    metrics = pd.read_csv(args.run_dir / TEST_METRICS_FILE)
    best = metrics.set_index("model").loc["best_single"]
    table = metrics[["model", "members", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "mcnemar_p_vs_best_single",
                     "parameters", "ms_per_image"]].copy()
    table["gain_vs_best_single"] = table["accuracy"] - best["accuracy"]
    table["cost_vs_best_single"] = table["ms_per_image"] / best["ms_per_image"]
    notes = [f"run: {args.run_dir}; {int(metrics['n_test'].iloc[0])} test images.",
             "An ensemble earns its cost when its gain is outside the noise (McNemar p < 0.05) at an acceptable cost."]
    write_results("ensemble_value", table, notes, args.quick)


if __name__ == "__main__":
    main()
