"""Benchmark 2: overhead per trial of `hpsearch tune` (Ray Tune + Optuna) against a plain Python loop.

The same N short trials (digits, the tutorial CNN) run one at a time both ways, in one process;
Ray's start-up is timed on its own.

    python -m benchmarks.orchestration_overhead [--quick]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import scratch_folder, write_results

RECIPE = '''
name = "overhead"
seed = 0
data = dict(source="digits", image_size=8)
train = dict(backbone="tutorial_cnn", batch_size=64, flip=False, lr=3e-3)
budget = dict(num_samples={n}, max_epochs={epochs}, grace_period={epochs}, max_concurrent=1, cpus_per_trial={cpus})

def space(trial, options):
    trial.suggest_float("drop_rate", 0.0, 0.3)
'''


def timed_search(recipe_text: str, folder: Path, name: str) -> tuple[float, int]:
    """Seconds the search took, and how many of its trials completed every epoch (the slope needs all)."""
    from hpsearch.recipe import load_recipe
    from hpsearch.search.tune import SearchOptions, run_search

    path = folder / f"{name}.py"
    path.write_text(recipe_text)
    recipe = load_recipe(path)
    start = time.perf_counter()
    trials = run_search(recipe, folder / name, SearchOptions(verbose=0))
    seconds = time.perf_counter() - start
    full = (trials["status"] == "completed") & (trials["epochs"] == recipe.budget.max_epochs)
    return seconds, int(full.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, epochs = (3, 2) if args.quick else (12, 3)
    cpus = os.cpu_count() or 1
    folder = scratch_folder("hpsearch-overhead-")
    os.environ["HPSEARCH_CACHE"] = str(folder / "cache")
    table = measure(folder, n, epochs, cpus)
    notes = ["Searches of n and 3n trials: marginal_overhead_per_trial_s is the slope, (tune(3n) - tune(n)) / 2n, "
             "less the plain loop's time per trial; fixed_overhead_s is what a search costs once (data preparation, "
             "space validation, Tune start-up, export of trials.csv); average_overhead_per_trial_s spreads both "
             "over the n trials. Ray start-up is timed apart; a first, untimed search of n trials starts Ray's worker "
             "processes so that both timed searches find them running.",
             "Per trial, Ray Tune reuses the trial's actor (no new process, no re-import of torch and timm), asks "
             "Optuna (SQLite) for a configuration, reports each epoch and checkpoints improved epochs.",
             "Target: marginal_overhead_per_trial_s under 1 s once Ray is up."]
    write_results("orchestration_overhead", table, notes, args.quick)


def measure(folder: Path, n: int, epochs: int, cpus: int) -> pd.DataFrame:
    import torch

    from hpsearch.data import prepare_trial_data
    from hpsearch.recipe import load_recipe
    from hpsearch.search.session import QUIET_RAY_ENV, start_ray
    from hpsearch.training import TrialConfig, train_trial

    torch.set_num_threads(cpus)  # as a trial with cpus_per_trial=cpus sets it
    texts = {count: RECIPE.format(n=count, epochs=epochs, cpus=cpus) for count in (n, 3 * n)}
    (folder / "plain.py").write_text(texts[n])
    recipe = load_recipe(folder / "plain.py")
    data = prepare_trial_data(recipe.data, recipe.seed, folder / "plain")
    start = time.perf_counter()
    for number in range(n):
        config = TrialConfig(**{**recipe.train.__dict__, "epochs": epochs, "seed": number, "drop_rate": 0.1})
        train_trial(config, data)
    plain_per_trial = (time.perf_counter() - start) / n

    for key, value in QUIET_RAY_ENV.items():
        os.environ.setdefault(key, value)  # the benchmark is an entry point; the library leaves the environment alone
    start = time.perf_counter()
    start_ray(None)
    ray_start = time.perf_counter() - start
    timed_search(texts[n], folder, "warm-up")  # starts Ray's worker processes (imports torch, timm) once
    (small, done_small), (large, done_large) = timed_search(texts[n], folder, "run-n"), \
        timed_search(texts[3 * n], folder, "run-3n")
    import ray

    ray.shutdown()
    marginal = (large - small) / (2 * n) - plain_per_trial
    fixed = small - n * (plain_per_trial + marginal)
    return pd.DataFrame([{"trials": n, "epochs_per_trial": epochs, "trials_completed_n": done_small,
                          "trials_completed_3n": done_large, "plain_loop_s": plain_per_trial * n,
                          "hpsearch_tune_s": small, "hpsearch_tune_3n_s": large, "ray_startup_s": ray_start,
                          "marginal_overhead_per_trial_s": marginal, "fixed_overhead_s": fixed,
                          "average_overhead_per_trial_s": (small - plain_per_trial * n) / n}])


if __name__ == "__main__":
    main()
