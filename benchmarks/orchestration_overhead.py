"""Benchmark 2: overhead per trial of `hpsearch tune` (Ray Tune + Optuna) against a plain Python loop.

The same N short trials (digits, the tutorial CNN) run one at a time both ways, in one process;
Ray's start-up is timed on its own.

    python -m benchmarks.orchestration_overhead [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import write_results

RECIPE = '''
name = "overhead"
seed = 0
data = dict(source="digits", image_size=8)
train = dict(backbone="tutorial_cnn", batch_size=64, flip=False, lr=3e-3)
budget = dict(num_samples={n}, max_epochs={epochs}, grace_period={epochs}, max_concurrent=1, cpus_per_trial={cpus})

def space(trial):
    trial.suggest_float("drop_rate", 0.0, 0.3)
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, epochs = (3, 2) if args.quick else (12, 3)
    cpus = os.cpu_count() or 1
    folder = Path(tempfile.mkdtemp(prefix="hpsearch-overhead-"))
    os.environ["HPSEARCH_CACHE"] = str(folder / "cache")
    recipe_path = folder / "overhead.py"
    recipe_path.write_text(RECIPE.format(n=n, epochs=epochs, cpus=cpus))

    from hpsearch.data import prepare_trial_data
    from hpsearch.recipe import load_recipe
    from hpsearch.search.tune import SearchOptions, run_search, start_ray
    from hpsearch.training import TrialConfig, train_trial

    recipe = load_recipe(recipe_path)
    data = prepare_trial_data(recipe.data, recipe.seed, folder / "plain")
    start = time.perf_counter()
    for number in range(n):
        config = TrialConfig(**{**recipe.train.__dict__, "epochs": epochs, "seed": number, "drop_rate": 0.1})
        train_trial(config, data, threads=cpus)
    plain = time.perf_counter() - start

    start = time.perf_counter()
    start_ray(None)
    ray_start = time.perf_counter() - start
    start = time.perf_counter()
    run_search(recipe, folder / "run", SearchOptions(verbose=0))
    tuned = time.perf_counter() - start
    import ray

    ray.shutdown()
    table = pd.DataFrame([{"trials": n, "epochs_per_trial": epochs, "plain_loop_s": plain, "hpsearch_tune_s": tuned,
                           "ray_startup_s": ray_start, "overhead_per_trial_s": (tuned - plain) / n}])
    notes = ["hpsearch_tune_s covers data preparation, space validation, the Optuna study in SQLite, Ray Tune "
             "scheduling, per-trial actors, checkpoints of improved epochs and the export of trials.csv.",
             "Target: overhead_per_trial_s under 1 s once Ray is up."]
    write_results("orchestration_overhead", table, notes, args.quick)


if __name__ == "__main__":
    main()
