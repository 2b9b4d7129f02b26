"""Benchmark 3: does TPE + ASHA find as good a model as naive search, and how much sooner?

Three searchers, each given the same wall-clock budget and run with 3 seeds on the same data:
  hpsearch  - `hpsearch tune`: Ray Tune, Optuna TPE, ASHA early stopping;
  random    - Ray Tune with random sampling and no early stopping;
  optuna    - Optuna's own TPE with its MedianPruner in one process, no Ray.
Reported: best validation accuracy, test accuracy of that best trial (read here only, for this
comparison), and the time each searcher needed to first reach the target validation accuracy. Unless
``--target`` is given, the target is the lowest best accuracy among all runs, the accuracy every run
reached, so every searcher has a time to it. Sized for 2 CPU cores: flowers at 32 px (the cheapest trials
that still learn), at most 8 epochs a trial, 180 s per searcher and seed (9 runs, about 30 minutes). Only
5-17 trials fit into one search there (2026-12-07; 4-9 before the NHWC layout), so hpsearch runs with
``startup_trials=2`` (one per backbone): the search is bounded by time, and ``num_samples`` (200) is only a
cap that the default start-up size (a quarter of it, at most 10) would take for the expected trial count.

    python -m benchmarks.search_efficiency [--quick] [--budget-s 180] [--target 0.7] [--seeds 3]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import optuna
import pandas as pd

from benchmarks.common import flowers_url, scratch_folder, write_results
from hpsearch.rundir import read_history

FLOWERS = ('data = dict(source="folder", url={url!r}, image_size=32)\n'
           'train = dict(batch_size=32, flip=True, patience=5)\n')
DEFAULT_BUDGET_S = 180.0  # other budgets write search_efficiency_<budget>s.md beside the default table
DIGITS = 'data = dict(source="digits", image_size=12)\ntrain = dict(batch_size=32, flip=False, patience=3)\n'
SPACE = '''
def space(trial, options):
    trial.suggest_categorical("backbone", ["tutorial_cnn", "resnet10t"])
    trial.suggest_float("lr", 3e-4, 1e-2, log=True)
    trial.suggest_float("weight_decay", 1e-5, 1e-1, log=True)
    trial.suggest_float("drop_rate", 0.0, 0.5)
    trial.suggest_float("aug_strength", 0.0, 1.5)
'''


def recipe_text(quick: bool, seed: int, samples: int, epochs: int, sampler: str, scheduler: str,
                budget_s: float) -> str:
    data = DIGITS if quick else FLOWERS.format(url=flowers_url())
    startup = ", startup_trials=2" if sampler != "random" and samples > 2 else ""
    budget = (f"budget = dict(num_samples={samples}, max_epochs={epochs}, cpus_per_trial=1, sampler={sampler!r}, "
              f"scheduler={scheduler!r}, time_budget_s={budget_s}{startup})\n")
    return f"name = 'efficiency'\nseed = {seed}\n{data}{budget}{SPACE}"


def first_time(curve: tuple[list[float], list[float]], target: float) -> float:
    """Seconds from the searcher's start to its first epoch at or above ``target`` (NaN: never)."""
    times, accs = pd.Series(curve[0], dtype=float), pd.Series(curve[1], dtype=float)
    reached = times[accs >= target - 1e-9]
    return float(reached.min()) if len(reached) else float("nan")


def run_ray(folder: Path, quick: bool, seed: int, epochs: int, samples: int, naive: bool, budget_s: float) -> dict:
    """hpsearch as shipped (TPE + ASHA), or the naive baseline (random sampling, no early stopping)."""
    from hpsearch.evaluation.evaluate import evaluate_run
    from hpsearch.recipe import load_recipe
    from hpsearch.search.tune import SearchOptions, run_search

    name = "random" if naive else "hpsearch"
    path = folder / f"recipe-{name}-{seed}.py"
    path.write_text(recipe_text(quick, seed, samples, epochs, "random" if naive else "tpe",
                                "fifo" if naive else "asha", budget_s))
    run_dir = folder / f"run-{name}-{seed}"
    start = time.time()
    trials = run_search(load_recipe(path), run_dir, SearchOptions(verbose=0))
    wall = time.time() - start
    history = read_history(run_dir)
    done = trials[trials["val_acc"].notna()].sort_values("val_acc", ascending=False)
    if done.empty:  # the time budget ran out before any trial finished an epoch
        return {"best_val_acc": float("nan"), "test_acc_of_best": float("nan"), "wall_s": wall, "trials": len(trials),
                "curve": ([], [])}
    test = evaluate_run(run_dir).set_index("model").loc["best_single", "accuracy"]
    return {"best_val_acc": float(done["val_acc"].iloc[0]), "test_acc_of_best": float(test), "wall_s": wall,
            "trials": len(trials), "curve": ((history["timestamp"] - start).tolist(), history["val_acc"].tolist())}


def run_optuna(folder: Path, quick: bool, seed: int, epochs: int, budget_s: float) -> dict:
    """Optuna's TPE with its MedianPruner, trials back to back in this process, no Ray."""
    from hpsearch.data import TestSplitKey, load_split, load_subset, prepare_trial_data
    from hpsearch.evaluation.metrics import classification_metrics
    from hpsearch.recipe import load_recipe
    from hpsearch.rundir import SPLIT_FILE
    from hpsearch.search.space import TrialSpace, split_trial_config
    from hpsearch.training import Trainer

    path = folder / f"recipe-optuna-{seed}.py"
    path.write_text(recipe_text(quick, seed, 1, epochs, "tpe", "asha", budget_s))
    recipe = load_recipe(path)
    run_dir = folder / f"optuna-{seed}"
    data = prepare_trial_data(recipe.data, seed, run_dir)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner(n_warmup_steps=2))
    space, start, log, best = TrialSpace(recipe), time.time(), [], {}

    def objective(trial):
        constants = space(trial)
        config, _ = split_trial_config({**trial.params, **constants})
        trainer = Trainer(config, data)

        def on_epoch(metrics, improved):
            log.append((time.time() - start, metrics["val_acc"]))
            trial.report(metrics["val_acc"], metrics["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()

        outcome = trainer.fit(on_epoch)
        if outcome.best.val_acc > best.get("val_acc", -1):
            trainer.load_weights(outcome.best.state_dict)
            best.update(val_acc=outcome.best.val_acc, trainer=trainer)
        return outcome.best.val_acc

    study.optimize(objective, timeout=budget_s)
    wall = time.time() - start
    # the benchmark reports each searcher's best model on test, as `hpsearch evaluate` would
    test = load_subset(recipe.data, load_split(run_dir / SPLIT_FILE), "test", key=TestSplitKey("benchmark"))
    test_acc = classification_metrics(best["trainer"].predict(test), test.labels)["accuracy"]
    return {"best_val_acc": float(study.best_value), "test_acc_of_best": float(test_acc), "wall_s": wall,
            "trials": len(study.trials), "curve": ([t for t, _ in log], [a for _, a in log])}


def summarize(rows: list[dict], target: float | None) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """Per-run table with time to target, and the means per searcher."""
    table = pd.DataFrame(rows)
    if target is None:  # the accuracy every run reached
        target = float(table["best_val_acc"].min())
    table["time_to_target_s"] = [first_time(curve, target) for curve in table.pop("curve")]
    summary = table.groupby("searcher", sort=False)[
        ["best_val_acc", "test_acc_of_best", "trials", "wall_s", "time_to_target_s"]].mean()
    summary["time_vs_random"] = summary["time_to_target_s"] / summary.loc["random", "time_to_target_s"] \
        if "random" in summary.index else float("nan")
    return table, summary.reset_index(), target


def seeds_won(table: pd.DataFrame, searcher: str = "hpsearch", baseline: str = "random") -> tuple[int, int]:
    """(seeds where ``searcher``'s best validation accuracy matches or beats ``baseline``'s, seeds run by both)."""
    best = table.pivot(index="seed", columns="searcher", values="best_val_acc")[[searcher, baseline]].dropna()
    return int((best[searcher] >= best[baseline] - 1e-9).sum()), len(best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S,
                        help="wall-clock budget per searcher and seed")
    parser.add_argument("--target", type=float,
                        help="validation accuracy to reach (default: the lowest best of all runs)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=8)
    args = parser.parse_args()
    quick = args.quick
    epochs, samples, seeds = (3, 4, 1) if quick else (args.max_epochs, 200, args.seeds)
    budget = 20.0 if quick else args.budget_s  # quick: a smoke test of every searcher, not a measurement
    folder = scratch_folder("hpsearch-efficiency-")
    os.environ["HPSEARCH_CACHE"] = str(folder / "cache")
    rows = []
    for seed in range(seeds):
        for name in ("hpsearch", "random", "optuna"):
            if name == "optuna":
                result = run_optuna(folder, quick, seed, epochs, budget)
            else:
                result = run_ray(folder, quick, seed, epochs, samples, name == "random", budget)
            rows.append({"searcher": name, "seed": seed, **result})
            print({k: v for k, v in rows[-1].items() if k != "curve"}, flush=True)
    table, summary, target = summarize(rows, args.target)
    notes = [f"target validation accuracy {target:.4f}" + ("" if args.target else " (the lowest best of all runs)")
             + f"; budget {budget:.0f} s per searcher and seed; {epochs} epochs max.",
             "time_to_target_s: seconds from the searcher's start to the first epoch at or above the target; "
             "time_vs_random: that time over random search's (target of the issue: at most 0.33).",
             "Test accuracy is read here only to compare searchers; hpsearch itself reads it in `evaluate`.",
             "hpsearch (its default searcher) matches or beats random search's best validation accuracy in "
             "{} of {} seeds (target of the issue: at least 2 of 3).".format(*seeds_won(table)),
             "Means over seeds:\n\n" + summary.to_markdown(index=False, floatfmt='.3f')]
    name = "search_efficiency" if quick or budget == DEFAULT_BUDGET_S else f"search_efficiency_{budget:.0f}s"
    write_results(name, table, notes, quick)


if __name__ == "__main__":
    main()
