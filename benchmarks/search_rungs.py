"""Benchmark 5b: what ASHA's first rung keeps, priced by the simulation's surrogate (no replay).

The search simulation's bound (``search_simulation bound``) shows that random sampling whose early stops are never
wrong would reach the flowers target in under a third of random search's time. This asks how far a real first rung
is from that: over random configurations of the recorded space, each replayed with fresh noise (``--draws`` times,
as the surrogate's ``predict`` draws it), a rung at epoch ``--rung`` keeps the top ``1/--reduction-factor`` by one
of several measures; the others stop there. Reported per measure: the share of the trials that would show the
target at some epoch that the rung keeps, and the median time of random sampling with that rung to the first kept
trial that shows the target, against a whole random search (the bound's units):

    python -m benchmarks.search_rungs [--dataset flowers] [--rung 4] [--reduction-factor 3] [--table CSV]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import write_results
from benchmarks.search_simulation import DATASETS, DEFAULT_DATASET, median_best, median_runs, space_draws, table_path
from benchmarks.surrogate import Surrogate, curves, load_surrogate
from hpsearch.search.budget import BudgetConfig

Measure = Callable[[np.ndarray, np.ndarray, int], np.ndarray]  # (noisy, noise-free curves, rung) -> score
MEASURES: dict[str, Measure] = {
    "best so far (ASHA's metric in hpsearch)": lambda noisy, mean, rung: noisy[:, :rung].max(1),
    "mean of the last two epochs": lambda noisy, mean, rung: noisy[:, max(0, rung - 2):rung].mean(1),
    "noise-free accuracy at the rung": lambda noisy, mean, rung: mean[:, rung - 1],
    "noise-free final accuracy (an oracle)": lambda noisy, mean, rung: mean[:, -1],
}


def rung_table(surrogate: Surrogate, configs: pd.DataFrame, target: float | None, rung: int, reduction_factor: int,
               trials: int, overhead: float, draws: int) -> tuple[pd.DataFrame, float]:
    """Per measure (and for a rung that is never wrong): the share of target-reaching trials the rung keeps, the
    median trials and simulated time of random sampling with that rung to the first kept one that reaches; and
    the target (``None``: random search's median best of ``trials``, as the bound takes it)."""
    means, seconds = surrogate.mean_curves(configs)
    target = median_best(surrogate, means, trials) if target is None else target
    full, stopped = surrogate.epochs * seconds + overhead, rung * seconds + overhead
    random_total = trials * float(full.mean())
    found: dict[str, list[tuple[float, float, float]]] = {}
    for seed in range(draws):
        noisy = surrogate.measure(means, np.random.default_rng(seed))
        reach = noisy.max(1) >= target - 1e-9
        rules = {name: measure(noisy, means, rung) for name, measure in MEASURES.items()}
        for name, score in rules.items():
            kept = score >= np.quantile(score, 1.0 - 1.0 / reduction_factor)
            found.setdefault(name, []).append(outcome(kept, reach, full, stopped))
        found.setdefault("never wrong (keeps exactly the trials that reach)", []).append(
            outcome(reach, reach, full, stopped))
    rows = []
    for name, values in found.items():
        kept_share, p, cost = np.nanmean(values, axis=0)
        n = median_runs(p)
        rows.append({"rung_keeps_by": name, "reachers_kept": kept_share, "reach_per_trial": p, "median_trials": n,
                     "trial_s": cost, "time_vs_random": n * cost / random_total})
    return pd.DataFrame(rows), target


def outcome(kept: np.ndarray, reach: np.ndarray, full: np.ndarray, stopped: np.ndarray) -> tuple[float, float, float]:
    """(share of reaching trials kept (NaN: none reached), chance a trial is kept and reaches, mean cost of a
    trial) for one draw."""
    share = (kept & reach).sum() / reach.sum() if reach.any() else float("nan")
    return float(share), float((kept & reach).mean()), float(np.where(kept, full, stopped).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=DEFAULT_DATASET, choices=sorted(DATASETS))
    parser.add_argument("--rung", type=int, help="the first rung's epoch (default: hpsearch's, "
                        "BudgetConfig.grace_epochs of the recorded epochs)")
    parser.add_argument("--reduction-factor", type=int, default=3)
    parser.add_argument("--target", type=float, help="the accuracy to reach (default: random search's median best "
                        "of --trials by the same model, as `search_simulation bound` takes it)")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--draws", type=int, default=20, help="replayed noise draws of every configuration")
    parser.add_argument("--configs", type=int, default=20_000)
    parser.add_argument("--trial-overhead-s", type=float, default=0.5)
    parser.add_argument("--table", type=Path, help="another learning-curve table of --dataset (default: its table "
                        "under benchmarks/data/)")
    parser.add_argument("--results", help="the results' file name under results/benchmarks (default: search_rungs, "
                        "with _<dataset> for another dataset)")
    parser.add_argument("--quick", action="store_true", help="2,000 configurations, 3 draws")
    args = parser.parse_args()
    configs_n, draws = (2_000, 3) if args.quick else (args.configs, args.draws)
    path = args.table or table_path(args.dataset)
    table = pd.read_csv(path)
    surrogate = load_surrogate(path, table)
    configs = space_draws(curves(table)[0], configs_n)
    rung = args.rung or BudgetConfig(max_epochs=surrogate.epochs).grace_epochs
    summary, target = rung_table(surrogate, configs, args.target, rung, args.reduction_factor, args.trials,
                                 args.trial_overhead_s, draws)
    notes = [f"dataset {args.dataset} ({path.name}): {configs_n} random configurations of the recorded space, "
             f"{draws} replayed noise draws each (noise {surrogate.noise_model()}); target {target:.4f}; a rung at "
             f"epoch {rung} of {surrogate.epochs} keeping "
             f"the top 1/{args.reduction_factor} of all trials by the measure (ASHA decides against the trials that "
             "reached the rung before, which this ignores); the rest stop there.",
             "reachers_kept: the share of the trials that show the target at some epoch that the rung keeps; "
             "reach_per_trial: the chance that a trial is kept and shows it; median_trials and time_vs_random: random "
             f"sampling with this rung, to the first such trial, over a whole {args.trials}-trial random search's "
             "simulated time (as in search_simulation_bound.md)."]
    name = args.results or ("search_rungs" if args.dataset == DEFAULT_DATASET else f"search_rungs_{args.dataset}")
    write_results(name, summary, notes, args.quick)


if __name__ == "__main__":
    main()
