"""Benchmark 5: search quality at budgets this machine cannot train, by replaying a recorded surrogate.

1. ``record`` trains configurations of a real search space (the one of ``search_efficiency``) with hpsearch
   itself, each to its full epoch budget (random sampling, no early stopping), and saves every epoch's
   validation accuracy and seconds as ``benchmarks/data/learning_curves_<dataset>.csv.gz``:

       python -m benchmarks.search_simulation record --dataset digits --configs 200 --max-epochs 12
       python -m benchmarks.search_simulation record --dataset flowers --configs 200 --max-epochs 12

2. A random-forest surrogate (``benchmarks/surrogate.py``) predicts each configuration's curve and epoch cost.
3. Searches are replayed through hpsearch's **real** path (``build_tuner``: Ray Tune, OptunaSearch with
   hpsearch's samplers, the scheduler, PBT's population) with a trainable that reports the surrogate's curve
   instead of training. One trial runs at a time; a simulated clock adds each epoch's recorded cost (and
   ``--trial-overhead-s`` per trial), so times are simulated seconds of one worker, not wall time.
4. Each searcher runs ``--seeds`` seeds of ``--trials`` trials. The target is random search's median final
   best accuracy; reported per searcher: median and IQR of the simulated time to reach it and of the final
   best, their ratio to random search, and Wilcoxon signed-rank p-values against random search (paired by seed).
   A second table, under the first, compares the same searches by what they hand over: the noise-free accuracy
   of each search's incumbent (the surrogate's mean curve at the configuration and epoch with the best reported
   accuracy): whether a searcher finds better configurations, apart from how lucky its best draw is.

       python -m benchmarks.search_simulation [--dataset flowers] [--seeds 20] [--trials 100] [--quick]

   The flowers table is the benchmark (``results/benchmarks/search_simulation.md``); on digits at 32 px
   (``--dataset digits``, ``search_simulation_digits.md``) every configuration reaches 0.96-0.99 within a few
   epochs, and the searchers differ by single validation images.
5. ``bound`` computes, from the surrogate alone (no replay), how soon a searcher that knew it would reach the
   target: the median time of an oracle that spends every trial on the best 0.1%, 1% or 5% of the space, against
   random search by the same model (``results/benchmarks/search_simulation_bound.md``).
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from ray.tune import Callback

from benchmarks.common import ROOT, flowers_url, scratch_folder, write_results
from benchmarks.search_efficiency import SPACE
from benchmarks.surrogate import (
    KEYS,
    LOG_SCALE,
    RESULTS,
    Surrogate,
    curves,
    empirical_random_best,
    load_surrogate,
    replay_trial,
)
from hpsearch.io import read_json
from hpsearch.rundir import CONFIG_FILE, SPLIT_FILE, read_history, read_trials
from hpsearch.search.budget import BudgetConfig

DATA = ROOT / "benchmarks" / "data"
SEARCHERS = {  # name -> (budget.sampler, budget.scheduler)
    "random": ("random", "fifo"), "tpe": ("tpe", "fifo"), "tpe_asha": ("tpe", "asha"), "gp_asha": ("gp", "asha"),
    "pbt": ("tpe", "pbt"), "hyperband": ("tpe", "hyperband"),
}
DEFAULT = "tpe_asha"  # hpsearch's defaults: budget.sampler="tpe", budget.scheduler="asha"
REPLAY_SETTINGS = ("sampler", "scheduler", "grace_period", "reduction_factor", "startup_trials",
                   "perturbation_interval")
VARIANT = re.compile(r"^(?P<name>\w+)(?:\[(?P<settings>[^\]]*)\])?$")  # tpe_asha[grace_period=4;reduction_factor=2]
DEFAULT_DATASET = "flowers"  # its results are results/benchmarks/search_simulation.md; others add _<dataset>
DATASETS = {"digits": 'dict(source="digits", image_size={size})',
            "flowers": 'dict(source="folder", url={url!r}, image_size={size})'}
PARAMS = ["backbone", "lr", "weight_decay", "drop_rate", "aug_strength"]
BOUND_DRAWS = 20_000  # configurations of the space the bound ranks


def searcher_budget(spec: str) -> dict:
    """The budget settings of a searcher: ``random`` .. ``hyperband``, optionally with settings of its own in
    brackets, such as ``tpe_asha[grace_period=4;reduction_factor=2]`` or ``tpe[sampler='gp']`` (the rest are the
    recipe's defaults)."""
    match = VARIANT.match(spec)
    if not match or match["name"] not in SEARCHERS:
        raise ValueError(f"Unknown searcher {spec!r}: use one of {list(SEARCHERS)}, optionally with budget "
                         f"settings in brackets, e.g. 'tpe_asha[grace_period=4;reduction_factor=2]'.")
    sampler, scheduler = SEARCHERS[match["name"]]
    settings = {"sampler": sampler, "scheduler": scheduler}
    for item in filter(None, (match["settings"] or "").split(";")):
        key, _, value = item.partition("=")
        if key.strip() not in REPLAY_SETTINGS:
            raise ValueError(f"Searcher {spec!r}: {key.strip()!r} is not a budget setting a replay may change; "
                             f"use one of {list(REPLAY_SETTINGS)}.")
        try:
            settings[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            raise ValueError(f"Searcher {spec!r}: {item!r} needs a Python literal value, such as grace_period=4."
                             ) from None
    return settings


def table_path(dataset: str) -> Path:
    return DATA / f"learning_curves_{dataset}.csv.gz"


# --- 1. record ----------------------------------------------------------------------------------------------------
def record(dataset: str, configs: int, epochs: int, image_size: int, seed: int, out: Path | None = None,
           run_dir: Path | None = None, ema_decay: float = 0.0) -> Path:
    """Train ``configs`` random configurations to ``epochs`` epochs with hpsearch; save their curves to ``out``
    (default: the dataset's table under benchmarks/data/). With ``run_dir`` the recording is an hpsearch run kept
    there (its recipe and decoded-image cache beside it), and the same command run again after an interruption
    (Ctrl-C, SIGTERM, a lost session) continues it: hours of recording can be spread over several sittings.
    ``ema_decay``: every trial validates a moving average of its weights (``train.ema_decay``), so the curves are
    the average's."""
    from hpsearch import api
    from hpsearch.cli import sigterm_as_interrupt
    from hpsearch.search.tune import SearchInterrupted

    run_dir = run_dir.resolve() if run_dir else None
    folder = run_dir.parent if run_dir else scratch_folder("hpsearch-record-")
    run = run_dir or folder / "run"
    os.environ.setdefault("HPSEARCH_CACHE", str(folder / "cache"))
    try:
        with sigterm_as_interrupt():
            if (run / CONFIG_FILE).is_file():
                check_recording(run, dataset, configs, epochs, image_size, seed, ema_decay)
                print(f"Continuing the recording in {run}", flush=True)
                api.resume(run, num_samples=configs, verbose=0)
            else:
                api.tune(record_recipe(folder, dataset, configs, epochs, image_size, seed, ema_decay), run, verbose=0)
    except SearchInterrupted:
        again = "run this command again to continue it" if run_dir else "nothing is kept without --run-dir DIR"
        raise SystemExit(f"The recording stopped before its {configs} configurations finished: {again}.") from None
    return write_curves(run, dataset, epochs, out or table_path(dataset))


def record_recipe(folder: Path, dataset: str, configs: int, epochs: int, image_size: int, seed: int,
                  ema_decay: float = 0.0) -> Path:
    """The recording's recipe: random sampling over ``SPACE``, no early stopping, one CPU per trial."""
    data = DATASETS[dataset].format(size=image_size, url=flowers_url() if dataset == "flowers" else "")
    path = folder / f"record-{dataset}.py"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(f"name = 'record-{dataset}'\nseed = {seed}\ndata = {data}\n"
                    f"train = dict(batch_size=32, flip={dataset == 'flowers'}, patience={epochs}, "
                    f"ema_decay={ema_decay})\n"
                    f"budget = dict(num_samples={configs}, max_epochs={epochs}, sampler='random', scheduler='fifo', "
                    f"cpus_per_trial=1)\n{SPACE}")
    return path


def check_recording(run: Path, dataset: str, configs: int, epochs: int, image_size: int, seed: int,
                    ema_decay: float = 0.0) -> None:
    """Refuse to continue the recording in ``run`` with other settings than it started with, or fewer
    configurations than it already asked for."""
    stored = read_json(run / CONFIG_FILE)
    found = {"dataset": stored["name"].removeprefix("record-"), "max-epochs": stored["budget"]["max_epochs"],
             "image-size": stored["data"]["image_size"], "seed": stored["seed"],
             "ema-decay": stored.get("train", {}).get("ema_decay", 0.0)}
    wanted = {"dataset": dataset, "max-epochs": epochs, "image-size": image_size, "seed": seed, "ema-decay": ema_decay}
    differ = [f"--{key} {found[key]} (not {wanted[key]})" for key in found if found[key] != wanted[key]]
    if differ:
        raise SystemExit(f"{run} holds a recording made with {', '.join(differ)}: give those values to continue "
                         f"it, or choose another --run-dir.")
    if configs < stored["budget"]["num_samples"]:
        raise SystemExit(f"{run} records {stored['budget']['num_samples']} configurations; --configs {configs} "
                         f"cannot shrink it: give --configs {stored['budget']['num_samples']} or more.")


def write_curves(run: Path, dataset: str, epochs: int, out: Path) -> Path:
    """The learning-curve table of a finished recording run: its configurations trained to ``epochs`` epochs."""
    trials = read_trials(run)
    history = read_history(run)[["trial_id", "optuna_trial", "epoch", "val_acc", "epoch_seconds"]]
    done = trials[(trials["status"] == "completed") & (trials["epochs"] == epochs)]
    table = history.merge(done[["trial_id", *PARAMS]], on="trial_id")
    table["config"] = table["optuna_trial"].astype(int)
    table["dataset"] = dataset
    table["val_images"] = int((pd.read_csv(run / SPLIT_FILE)["subset"] == "val").sum())
    table = table[[*KEYS, *PARAMS, *RESULTS]].sort_values(["config", "epoch"])
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False, float_format="%.6g", compression="gzip")
    print(f"Recorded {table['config'].nunique()} configurations x {epochs} epochs to {out}")
    return out


# --- 3. replay ----------------------------------------------------------------------------------------------------
class SimulatedClock(Callback):
    """A Ray Tune callback: one worker's simulated seconds, and the best accuracy seen at each point of it.

    Every result advances the clock by its epoch's recorded cost (times the epochs since the trial's last result:
    a result Ray drops while pausing a trial was still trained), plus ``overhead`` for a trial's first result.
    A trial that PBT restarted from another trial's checkpoint is charged from the donor's epoch on.
    It also follows the incumbent, the epoch with the best accuracy so far (the model the search would hand over;
    a tie keeps the earlier one), and its noise-free accuracy (``true_acc``, the surrogate's mean curve there): what
    that configuration and epoch give on average, where the best reported accuracy is the luckiest of many noisy
    draws (the replayed noise is the recorded jitter: part validation-sample luck, part real run-to-run variation).
    """

    def __init__(self, overhead: float):
        self.overhead, self.now, self.best, self.incumbent_true = overhead, 0.0, -np.inf, -np.inf
        self.seen: dict[str, int] = {}
        self.times: list[float] = []
        self.bests: list[float] = []
        self.epochs = 0

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        epoch = int(result["epoch"])
        first = trial.trial_id not in self.seen
        last = epoch - 1 if first or result.get("exploited") else self.seen[trial.trial_id]
        charged = max(1, epoch - last)
        self.seen[trial.trial_id] = epoch
        self.epochs += charged
        self.now += charged * float(result["sim_seconds"]) + (self.overhead if first else 0.0)
        if float(result["val_acc"]) > self.best:
            self.best = float(result["val_acc"])
            self.incumbent_true = float(result.get("true_acc", self.best))
        self.times.append(self.now)
        self.bests.append(self.best)

    def time_to(self, target: float) -> float:
        """Simulated seconds until the best accuracy first reached ``target`` (inf: never)."""
        reached = [t for t, b in zip(self.times, self.bests, strict=True) if b >= target - 1e-12]
        return reached[0] if reached else float("inf")


def replay_recipe(searcher: str, seed: int, trials: int, epochs: int) -> str:
    """The recipe of one replayed search: the search space of ``search_efficiency``, one trial at a time."""
    settings = searcher_budget(searcher)
    return (f"name = 'sim'\nseed = {seed}\ndata = dict(source='digits')\n"
            f"budget = dict(num_samples={trials}, max_epochs={epochs}, max_concurrent=1, **{settings!r})\n{SPACE}")


def replay(surrogate: Surrogate, searcher: str, seed: int, trials: int, folder: Path, overhead: float) -> dict:
    """One search of ``trials`` trials through hpsearch's own Tuner, replaying the surrogate; its clock."""
    from ray import tune

    from hpsearch.recipe import load_recipe
    from hpsearch.search.tune import SearchOptions, build_tuner

    label = re.sub(r"\W+", "_", searcher)
    path = folder / f"{label}-{seed}.py"
    path.write_text(replay_recipe(searcher, seed, trials, surrogate.epochs))
    recipe = load_recipe(path)
    scheduler = recipe.budget.scheduler
    run_dir = folder / f"run-{label}-{seed}"
    run_dir.mkdir()
    random.seed(seed)  # PBT's explore and exploit draw from Python's random module
    clock = SimulatedClock(overhead)
    trainable = tune.with_resources(tune.with_parameters(replay_trial, surrogate=surrogate,
                                                         checkpoint=scheduler in ("pbt", "hyperband")), {"cpu": 1})
    start = time.perf_counter()
    build_tuner(recipe, run_dir, trainable, SearchOptions(verbose=0, callbacks=[clock]), 1, trials).fit()
    return {"searcher": searcher, "seed": seed, "clock": clock, "epochs": clock.epochs, "sim_s": clock.now,
            "final_best": clock.best, "final_true": clock.incumbent_true, "wall_s": time.perf_counter() - start}


# --- 4. statistics ------------------------------------------------------------------------------------------------
def iqr(values: pd.Series) -> str:
    """The quartiles, as observed values (a search that never reached the target counts as infinite)."""
    low, high = np.percentile(values.to_numpy(float), [25, 75], method="closest_observation")
    return f"{low:.4g}-{high:.4g}"


def wilcoxon(a: pd.Series, b: pd.Series) -> float:
    """Two-sided Wilcoxon signed-rank p of paired samples; a search that never reached the target ranks last."""
    from scipy.stats import wilcoxon as test

    finite = pd.concat([a, b]).replace(np.inf, np.nan).dropna()
    ceiling = 2 * finite.max() if len(finite) else 1.0
    x, y = a.replace(np.inf, ceiling).to_numpy(), b.replace(np.inf, ceiling).to_numpy()
    if len(x) < 2 or np.allclose(x, y):
        return float("nan")
    return float(test(x, y).pvalue)


def paired_with_random(runs: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame, pd.DataFrame]]:
    """(searcher, its runs indexed by seed, random search's runs of the same seeds), for every searcher in the
    order of ``runs``, on the seeds random search ran too: the pairs of the Wilcoxon tests."""
    base = runs[runs["searcher"] == "random"].set_index("seed")
    for name, group in runs.groupby("searcher", sort=False):
        group = group.set_index("seed").loc[base.index.intersection(group["seed"])]
        yield name, group, base.loc[group.index]


def summarize(runs: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """Per searcher: time to random search's median final best (against the median simulated time of a whole
    random search: the issue's ratio), the final best, and Wilcoxon p-values against random search, by seed."""
    baseline = runs[runs["searcher"] == "random"]
    target, random_time = float(baseline["final_best"].median()), float(baseline["sim_s"].median())
    runs["time_to_target_s"] = [clock.time_to(target) for clock in runs["clock"]]
    rows = []
    for name, group, base in paired_with_random(runs):
        median_time = float(group["time_to_target_s"].median())
        settings = searcher_budget(name)
        rows.append({"searcher": name, "sampler": settings["sampler"], "scheduler": settings["scheduler"],
                     "seeds": len(group), "reached_target": int(np.isfinite(group["time_to_target_s"]).sum()),
                     "median_time_to_target_s": median_time, "iqr_time_to_target_s": iqr(group["time_to_target_s"]),
                     "time_vs_random": median_time / random_time,
                     "p_time_vs_random": wilcoxon(group["time_to_target_s"], base["time_to_target_s"]),
                     "median_final_best": float(group["final_best"].median()),
                     "iqr_final_best": iqr(group["final_best"]),
                     "p_final_vs_random": wilcoxon(group["final_best"], base["final_best"]),
                     "median_sim_s": float(group["sim_s"].median()), "median_wall_s": float(group["wall_s"].median())})
    return pd.DataFrame(rows), target


def verdict(summary: pd.DataFrame) -> str:
    row = summary.set_index("searcher").loc[DEFAULT] if DEFAULT in set(summary["searcher"]) else None
    if row is None:
        return f"The default searcher ({DEFAULT}) was not run."
    ok = row["time_vs_random"] <= 1 / 3 and row["p_time_vs_random"] < 0.05
    return (f"Done-when check ({DEFAULT} reaches random search's median final accuracy in <= 1/3 of random search's "
            f"simulated time, Wilcoxon p < 0.05): {'MET' if ok else 'NOT MET'} (ratio {row['time_vs_random']:.3f}, "
            f"p = {row['p_time_vs_random']:.3g}, {row['seeds']} seeds).")


def incumbents(runs: pd.DataFrame) -> pd.DataFrame:
    """Per searcher, what its searches hand over: the final incumbent's reported accuracy (``final_best``) and its
    noise-free accuracy (``final_true``), their gap, and a Wilcoxon p of ``final_true`` against random search's."""
    rows = []
    for name, group, base in paired_with_random(runs):
        rows.append({"searcher": name, "seeds": len(group), "median_final_best": float(group["final_best"].median()),
                     "median_final_true": float(group["final_true"].median()),
                     "iqr_final_true": iqr(group["final_true"]),
                     "median_optimism": float((group["final_best"] - group["final_true"]).median()),
                     "p_true_vs_random": wilcoxon(group["final_true"], base["final_true"])})
    return pd.DataFrame(rows)


def incumbent_note(runs: pd.DataFrame) -> str:
    """``incumbents`` as a note under the benchmark's table."""
    return ("What each search hands over: its final incumbent, the configuration and epoch with the best reported "
            "accuracy, and that incumbent's noise-free accuracy (the surrogate's mean curve there: what the "
            "configuration gives at that epoch on average). median_optimism: the median of reported minus "
            "noise-free, the winner's curse of keeping the luckiest of many noisy epochs. Not the issue's measure: "
            "it shows whether a searcher hands over a better configuration, where the table above shows how soon "
            "its best reported accuracy reaches random search's.\n\n"
            + incumbents(runs).to_markdown(index=False, floatfmt=".4g"))


def replay_all(path: Path, jobs: list[tuple[str, int]], trials: int, overhead: float) -> list[dict]:
    """Replay the (searcher, seed) ``jobs`` one after the other in a Ray instance of one CPU (a process of its own)."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    surrogate = load_surrogate(path)
    # the studies' SQLite commits dominate a replay's driver time; in memory (tmpfs) they cost almost nothing
    folder = scratch_folder("hpsearch-simulation-", memory=True)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    runs = []
    try:
        for name, seed in jobs:
            runs.append(replay(surrogate, name, seed, trials, folder, overhead))
            print({k: v for k, v in runs[-1].items() if k != "clock"}, flush=True)
    finally:
        ray.shutdown()
    return runs


def simulate(args: argparse.Namespace) -> None:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    path = args.table or table_path(args.dataset)
    table = pd.read_csv(path)
    surrogate = load_surrogate(path, table)
    jobs = [(name, seed) for seed in range(args.seeds) for name in args.searchers]
    chunks = [jobs[i::args.jobs] for i in range(args.jobs) if jobs[i::args.jobs]]
    start = time.perf_counter()
    with ProcessPoolExecutor(len(chunks), mp_context=get_context("spawn")) as pool:
        parts = list(pool.map(replay_all, [path] * len(chunks), chunks, [args.trials] * len(chunks),
                              [args.trial_overhead_s] * len(chunks)))
    runs = [run for part in parts for run in part]
    summary, target = summarize(pd.DataFrame(runs))
    trials_per_min = 60 * args.trials * len(runs) / (time.perf_counter() - start)
    notes = [f"dataset {args.dataset}: {surrogate.configs} recorded configurations x {surrogate.epochs} epochs "
             f"({path.name}); surrogate: random forests, 5-fold CV R^2 of the final "
             f"accuracy {surrogate.cv_r2_final:.3f} (out-of-bag error sd of the final accuracy "
             f"{surrogate.oob_error[-1]:.4f}); replayed accuracies add noise {surrogate.noise_model()}, rounded to the "
             f"{surrogate.val_images} validation images. Check of the replay: on the recorded curves themselves, "
             f"{args.trials} random full-length configurations reach a median best of "
             f"{empirical_random_best(table, args.trials):.4f}.",
             f"{args.trials} trials per search, {args.seeds} seeds, one worker; target = random search's median final "
             f"best = {target:.4f}; times are simulated seconds (recorded epoch costs + {args.trial_overhead_s:g} s "
             f"per trial); replay speed {trials_per_min:.0f} trials per wall minute with {args.jobs} processes.",
             "time_vs_random: median time to the target over the median simulated time of a whole random search. "
             "p-values: two-sided Wilcoxon signed-rank against random search, paired by seed, of the time to the "
             "target (a search that never reached it ranks last) and of the final best.", verdict(summary),
             incumbent_note(pd.DataFrame(runs))]
    name = args.results or ("search_simulation" if args.dataset == DEFAULT_DATASET
                            else f"search_simulation_{args.dataset}")
    write_results(name, summary, notes, args.quick)


# --- 5. a bound: what knowing the surrogate would be worth ----------------------------------------------------------
def median_runs(p: float) -> float:
    """The median number of independent runs, each reaching the target with probability ``p``, to the first."""
    p = min(max(float(p), 1e-12), 1 - 1e-12)
    return float(math.ceil(math.log(0.5) / math.log1p(-p)))


def space_draws(configs: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` random configurations of the space the recorded ``configs`` were drawn from: each categorical from its
    recorded choices, each number uniformly (log-uniformly for ``LOG_SCALE``) between its recorded extremes."""
    rng = np.random.default_rng(seed)
    columns = {}
    for name in configs.columns:
        values = configs[name]
        if not pd.api.types.is_numeric_dtype(values):
            columns[name] = rng.choice(sorted(values.astype(str).unique()), n)
        elif name in LOG_SCALE:
            columns[name] = np.exp(rng.uniform(np.log(values.min()), np.log(values.max()), n))
        else:
            columns[name] = rng.uniform(values.min(), values.max(), n)
    return pd.DataFrame(columns)


def search_bound(surrogate: Surrogate, configs: pd.DataFrame, trials: int, overhead: float,
                 tops: tuple[float, ...] = (0.001, 0.01, 0.05), target: float | None = None
                 ) -> tuple[pd.DataFrame, float]:
    """Median simulated times to random search's median best of ``trials`` full-length trials, every run's replay
    noise drawn afresh (``Surrogate.reach_probabilities``): for random search over ``configs`` (random draws of the
    space) and for an oracle that knows the surrogate's mean curves and spends every trial on configurations as good
    as the one at each share in ``tops`` of ``configs``, ranked by expected time to reach the target (0.001: the
    best 0.1%).
    ``target``: another target than that median best. Returns the table and the target."""
    means, seconds = surrogate.mean_curves(configs)
    cost = surrogate.epochs * seconds + overhead
    if target is None:
        target, p = random_search_reach(surrogate, means, trials)
    else:
        p = surrogate.reach_probability(means, target)
    random_total = trials * float(cost.mean())
    rows = [("random", float(p.mean()), float(cost.mean()), {})]
    order = np.argsort(cost / np.maximum(p, 1e-12))
    rows += [(f"oracle, best {top:.1%} of the space", float(p[i]), float(cost[i]),
              configs.iloc[i][surrogate.params].to_dict()) for top in tops
             for i in [order[max(0, math.ceil(top * len(configs)) - 1)]]]
    table = pd.DataFrame([bound_row(name, reach_p, trial_s, config, random_total)
                          for name, reach_p, trial_s, config in rows]
                         + [early_stop_row(surrogate, p, seconds, overhead, epoch, random_total)
                            for epoch in sorted({1, BudgetConfig(max_epochs=surrogate.epochs).grace_epochs})])
    return table, target


def median_best(surrogate: Surrogate, means: np.ndarray, trials: int) -> float:
    """The best accuracy (a share of the validation images) that half of all random searches of ``trials``
    full-length trials over the configurations of ``means`` reach, by the surrogate's replay noise."""
    return random_search_reach(surrogate, means, trials)[0]


def random_search_reach(surrogate: Surrogate, means: np.ndarray, trials: int) -> tuple[float, np.ndarray]:
    """(``median_best``, each row of ``means``' chance of showing it in one full run), from one computation of the
    chances of every share (under correlated noise: one set of replays)."""
    shares = np.arange(surrogate.val_images + 1) / surrogate.val_images
    reach = surrogate.reach_probabilities(means, shares)
    index = int(np.flatnonzero(1 - (1 - reach.mean(axis=0)) ** trials >= 0.5).max())
    return float(shares[index]), reach[:, index]


def early_stop_row(surrogate: Surrogate, reach: np.ndarray, seconds: np.ndarray, overhead: float, epoch: int,
                   random_total: float) -> dict:
    """Random sampling with early stopping that is never wrong: every trial that will not show the target is
    stopped after ``epoch`` epochs, the one that will trains in full. Its median time is that of the trials before
    the first that reaches (stopped: their mean cost, weighted by the chance of not reaching) plus one full trial."""
    stopped_s = float(np.average(epoch * seconds + overhead, weights=np.maximum(1.0 - reach, 1e-12)))
    full_s = float(np.average(surrogate.epochs * seconds + overhead, weights=np.maximum(reach, 1e-12)))
    trials = median_runs(float(reach.mean()))
    time_s = (trials - 1) * stopped_s + full_s
    return {"searcher": f"random, early stops never wrong at epoch {epoch}", "reach_per_trial": float(reach.mean()),
            "trial_s": time_s / trials, "median_trials": trials, "median_time_s": time_s,
            "time_vs_random": time_s / random_total, "configuration": ""}


def bound_row(name: str, reach_p: float, trial_s: float, config: dict, random_total: float) -> dict:
    """One row of the bound's table: a searcher whose every trial reaches the target with ``reach_p``."""
    trials = median_runs(reach_p)
    return {"searcher": name, "reach_per_trial": reach_p, "trial_s": trial_s, "median_trials": trials,
            "median_time_s": trials * trial_s, "time_vs_random": trials * trial_s / random_total,
            "configuration": ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in config.items())}


def bound(args: argparse.Namespace) -> None:
    path = args.table or table_path(args.dataset)
    table = pd.read_csv(path)
    surrogate = load_surrogate(path, table)
    configs = space_draws(curves(table)[0], BOUND_DRAWS)
    summary, target = search_bound(surrogate, configs, args.trials, args.trial_overhead_s, target=args.target)
    notes = [f"dataset {args.dataset} ({path.name}): the surrogate's mean curves of {len(configs)} random draws "
             f"of the recorded configurations' space (not the recorded ones, whose fitted curves keep some of their "
             f"recorded noise); every trial full length ({surrogate.epochs} epochs), each run's replay noise drawn "
             f"afresh, as `predict` draws it ({surrogate.noise_model()}), rounded to {surrogate.val_images} "
             "validation images.",
             (f"target = {target:.4f}, given by --target." if args.target is not None else
              f"target = the best accuracy half of all {args.trials}-trial random searches reach, by the same model: "
              f"{target:.4f} (`simulate` measures its own from its replayed random searches)."),
             "reach_per_trial: the chance that one trial shows the target at some epoch; median_trials: trials to "
             "the first that does (half of all searches need fewer); time_vs_random: median_time_s over a whole "
             f"random search's simulated time ({args.trials} trials of the mean cost). An oracle row is a searcher "
             "that knows the surrogate and spends every trial, from the first, on configurations as good as the one "
             "at that share of the space: no searcher of full-length trials reaches the target much sooner than the "
             "best 0.1%, and one that has narrowed its draws to the best 1% or 5% of the space, however fast, does "
             "as those rows do. The last rows bound early stopping instead: random sampling whose early stops are "
             "never wrong (a trial that will not show the target is stopped after that epoch; the one that will "
             "trains in full); trial_s is their mean cost per trial."]
    name = args.results or ("search_simulation_bound" if args.dataset == DEFAULT_DATASET
                            else f"search_simulation_bound_{args.dataset}")
    write_results(name, summary, notes, args.quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="simulate", choices=["simulate", "record", "bound"])
    parser.add_argument("--dataset", default=DEFAULT_DATASET, choices=sorted(DATASETS))
    parser.add_argument("--quick", action="store_true", help="a smoke test: 2 seeds of 12 trials, 3 searchers")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--searchers", default=",".join(SEARCHERS),
                        help=f"comma-separated subset of {list(SEARCHERS)}, each optionally with budget settings of "
                        "its own in brackets: 'random,tpe_asha[grace_period=4;reduction_factor=2]'")
    parser.add_argument("--results", help="the results' file name under results/benchmarks (default: "
                        "search_simulation, with _<dataset> for another dataset than flowers)")
    parser.add_argument("--trial-overhead-s", type=float, default=0.5, help="simulated seconds each trial adds")
    parser.add_argument("--jobs", type=int, default=2, help="replays run at once (processes, one CPU each)")
    parser.add_argument("--configs", type=int, default=200, help="record: configurations to train")
    parser.add_argument("--max-epochs", type=int, default=12, help="record: epochs of each configuration")
    parser.add_argument("--image-size", type=int, default=32, help="record: image side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="record: seed of the recorded configurations")
    parser.add_argument("--ema-decay", type=float, default=0.0, help="record: train.ema_decay of every trial (the "
                        "curves are then the moving average's; 0: off)")
    parser.add_argument("--run-dir", type=Path, help="record: keep the recording's run directory here; run the same "
                        "command again to continue an interrupted recording")
    parser.add_argument("--target", type=float, help="bound: the accuracy to reach (default: the median best of "
                        "random search by the same model)")
    parser.add_argument("--table", type=Path, help="the table to write (record) or read (simulate); default: "
                        "benchmarks/data/learning_curves_<dataset>.csv.gz")
    args = parser.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a benchmark is an entry point: it owns the logging
    if args.command == "record":
        record(args.dataset, args.configs, args.max_epochs, args.image_size, args.seed, args.table, args.run_dir,
               args.ema_decay)
        return
    if args.command == "bound":
        bound(args)
        return
    args.searchers = [s.strip() for s in args.searchers.split(",") if s.strip()]
    try:
        for spec in args.searchers:
            searcher_budget(spec)
    except ValueError as error:
        raise SystemExit(f"--searchers: {error}") from None
    if "random" not in args.searchers:
        raise SystemExit(f"--searchers must include random (the baseline), but got {args.searchers}.")
    if args.quick:
        args.seeds, args.trials, args.searchers = 2, 12, ["random", DEFAULT, "pbt"]
    simulate(args)


if __name__ == "__main__":
    main()
