"""Benchmark 3: does TPE + ASHA find as good a model as naive search, and how much sooner?

Three searchers, each given the same wall-clock budget and run with 3 seeds on the same data:
  hpsearch  - `hpsearch tune`: Ray Tune, Optuna TPE, ASHA early stopping;
  random    - Ray Tune with random sampling and no early stopping;
  optuna    - Optuna's own TPE with its MedianPruner in one process, no Ray.
Reported: best validation accuracy, test accuracy of that best trial (read here only, for this
comparison), and the time each searcher needed to first reach the target validation accuracy.

    python -m benchmarks.search_efficiency [--quick] [--budget-s 1200] [--target 0.8]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import optuna
import pandas as pd

from benchmarks.common import flowers_url, write_results

FLOWERS = ('data = dict(source="folder", url={url!r}, image_size=64)\n'
           'train = dict(batch_size=32, flip=True, patience=5)\n')
DIGITS = 'data = dict(source="digits", image_size=12)\ntrain = dict(batch_size=32, flip=False, patience=3)\n'
SPACE = '''
def space(trial):
    trial.suggest_categorical("backbone", ["tutorial_cnn", "resnet10t"])
    trial.suggest_float("lr", 3e-4, 1e-2, log=True)
    trial.suggest_float("weight_decay", 1e-5, 1e-1, log=True)
    trial.suggest_float("drop_rate", 0.0, 0.5)
    trial.suggest_float("aug_strength", 0.0, 1.5)
'''


def recipe_text(quick: bool, seed: int, samples: int, epochs: int, sampler: str, scheduler: str,
                budget_s: float) -> str:
    data = DIGITS if quick else FLOWERS.format(url=flowers_url())
    budget = (f"budget = dict(num_samples={samples}, max_epochs={epochs}, grace_period=2, reduction_factor=3, "
              f"cpus_per_trial=1, sampler={sampler!r}, scheduler={scheduler!r}, time_budget_s={budget_s})\n")
    return f"name = 'efficiency'\nseed = {seed}\n{data}{budget}{SPACE}"


def first_time(times: pd.Series, accs: pd.Series, target: float) -> float:
    reached = times[accs >= target]
    return float(reached.min()) if len(reached) else float("nan")


def run_ray(folder: Path, quick: bool, seed: int, epochs: int, samples: int, naive: bool, budget_s: float,
            target: float) -> dict:
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
    history = pd.read_csv(run_dir / "history.csv")
    done = trials[trials["val_acc"].notna()].sort_values("val_acc", ascending=False)
    if done.empty:  # the time budget ran out before any trial finished an epoch
        return {"best_val_acc": float("nan"), "test_acc_of_best": float("nan"), "wall_s": wall, "trials": len(trials),
                "time_to_target_s": float("nan")}
    test = evaluate_run(run_dir).set_index("model").loc["best_single", "accuracy"]
    return {"best_val_acc": float(done["val_acc"].iloc[0]), "test_acc_of_best": float(test), "wall_s": wall,
            "trials": len(trials), "time_to_target_s": first_time(history["timestamp"] - start, history["val_acc"], target)}


def run_optuna(folder: Path, quick: bool, seed: int, epochs: int, budget_s: float, target: float) -> dict:
    """Optuna's TPE with its MedianPruner, trials back to back in this process, no Ray."""
    from hpsearch.data import prepare_trial_data
    from hpsearch.evaluation.metrics import classification_metrics
    from hpsearch.data import load_split, load_subset
    from hpsearch.recipe import load_recipe
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
        trainer = Trainer(config, data, threads=os.cpu_count())

        def on_epoch(metrics, improved):
            log.append((time.time() - start, metrics["val_acc"]))
            trial.report(metrics["val_acc"], metrics["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()

        outcome = trainer.fit(on_epoch)
        if outcome.best.val_acc > best.get("val_acc", -1):
            trainer.model.load_state_dict(outcome.best.state_dict)
            best.update(val_acc=outcome.best.val_acc, trainer=trainer)
        return outcome.best.val_acc

    study.optimize(objective, timeout=budget_s)
    wall = time.time() - start
    test = load_subset(recipe.data, load_split(run_dir / "split.csv"), "test")
    test_acc = classification_metrics(best["trainer"].predict(test), test.labels)["accuracy"]
    times, accs = pd.Series([t for t, _ in log]), pd.Series([a for _, a in log])
    return {"best_val_acc": float(study.best_value), "test_acc_of_best": float(test_acc), "wall_s": wall,
            "trials": len(study.trials), "time_to_target_s": first_time(times, accs, target)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--budget-s", type=float, default=1200.0, help="wall-clock budget per searcher and seed")
    parser.add_argument("--target", type=float, help="validation accuracy to reach (default 0.8, quick: 0.9)")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    quick = args.quick
    epochs, samples, seeds = (3, 4, 1) if quick else (20, 200, args.seeds)
    target = args.target or (0.9 if quick else 0.8)
    budget = 60.0 if quick else args.budget_s
    folder = Path(tempfile.mkdtemp(prefix="hpsearch-efficiency-"))
    os.environ["HPSEARCH_CACHE"] = str(folder / "cache")
    rows = []
    for seed in range(seeds):
        for name in ("hpsearch", "random", "optuna"):
            if name == "optuna":
                result = run_optuna(folder, quick, seed, epochs, budget, target)
            else:
                result = run_ray(folder, quick, seed, epochs, samples, name == "random", budget, target)
            rows.append({"searcher": name, "seed": seed, **result})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    summary = table.groupby("searcher")[["best_val_acc", "test_acc_of_best", "wall_s", "time_to_target_s"]].mean()
    notes = [f"target validation accuracy {target}; budget {budget:.0f} s per searcher and seed; {epochs} epochs max.",
             "time_to_target_s: seconds from the searcher's start to the first epoch at or above the target.",
             "Test accuracy is read here only to compare searchers; hpsearch itself reads it in `evaluate`.",
             "Means over seeds:\n\n" + summary.reset_index().to_markdown(index=False, floatfmt='.3f')]
    write_results("search_efficiency", table, notes, quick)


if __name__ == "__main__":
    main()
