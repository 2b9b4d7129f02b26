"""The benchmarks' --quick modes run end to end (a smoke test: no timing is asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_ARCHIVE = ROOT.parent / "shared" / "data" / "flower_photos_s160.tgz"


def run_benchmark(tmp_path, *args):
    env = {**os.environ, "HPSEARCH_BENCH_RESULTS": str(tmp_path), "PYTHONPATH": str(ROOT),
           "RAY_USAGE_STATS_ENABLED": "0"}
    result = subprocess.run([sys.executable, *args, "--quick"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


@pytest.mark.slow
@pytest.mark.benchmark
@pytest.mark.skipif(not SHARED_ARCHIVE.is_file(), reason="needs ../shared/data/flower_photos_s160.tgz")
def test_pipeline_throughput_quick(tmp_path):
    run_benchmark(tmp_path, "-m", "benchmarks.pipeline_throughput")
    table = pd.read_csv(tmp_path / "pipeline_throughput-quick.csv")
    assert set(table["method"]) == {"baseline_imagefolder", "bare_tensor_loop", "hpsearch_trial",
                                    "hpsearch_trial_buffers", "hpsearch_trial_allocating", "hpsearch_trial_nchw",
                                    "hpsearch_trial_bf16"}
    trials = table[table["method"].str.startswith("hpsearch_trial")]
    assert (trials["user_s_per_1k"] > 0).all() and (trials["sys_s_per_1k"] >= 0).all()
    assert (table["images_per_s"] > 0).all()
    assert "cores" in (tmp_path / "pipeline_throughput-quick.md").read_text()
    inference = pd.read_csv(tmp_path / "pipeline_inference-quick.csv")
    assert len(inference) == 1 and (inference[["nchw_images_per_s", "inference_layout_images_per_s"]] > 0).all(None)
    assert inference["speedup"].iloc[0] == pytest.approx(
        inference["inference_layout_images_per_s"].iloc[0] / inference["nchw_images_per_s"].iloc[0])


@pytest.mark.slow
@pytest.mark.benchmark
def test_orchestration_overhead_quick(tmp_path):
    run_benchmark(tmp_path, "-m", "benchmarks.orchestration_overhead")
    table = pd.read_csv(tmp_path / "orchestration_overhead-quick.csv")
    row = table.iloc[0]
    # the slope compares searches of n and 3n trials: it only means something if every trial ran all its epochs
    assert row["trials"] == 3 and row["trials_completed_n"] == 3 and row["trials_completed_3n"] == 9
    assert np.isfinite(row["marginal_overhead_per_trial_s"]) and row["ray_startup_s"] > 0


@pytest.mark.slow
@pytest.mark.benchmark
def test_memory_quick(tmp_path):
    run_benchmark(tmp_path, "-m", "benchmarks.memory")
    table = pd.read_csv(tmp_path / "memory-quick.csv")
    assert table["concurrent_trials"].tolist() == [1, 2, 2, 2] and (table["peak_pss_tree_mib"] > 0).all()
    scale = table.dropna(subset=["decoded_gib"])
    assert len(scale) == 2 and (scale["peak_anon_per_trial_mib"] > 0).all()
    # trials get a reference to the memory-mapped cache, not the images: the object store holds no copy
    assert (scale["peak_object_store_used_mib"] < 0.25 * scale["decoded_gib"] * 1024).all()


@pytest.mark.slow
@pytest.mark.benchmark
@pytest.mark.skipif(not SHARED_ARCHIVE.is_file(), reason="needs ../shared/data/flower_photos_s160.tgz")
def test_two_nodes_quick(tmp_path):
    run_benchmark(tmp_path, "-m", "benchmarks.two_nodes")
    table = pd.read_csv(tmp_path / "two_nodes-quick.csv").set_index("node")
    assert (table["trials"] > 0).all() and table["trials"].sum() == 4  # trials ran on both nodes
    assert (table["cache_entries"] == 2).all() and not table["cache_written_after_first_epoch"].any()
    assert "MET" in (tmp_path / "two_nodes-quick.md").read_text()


@pytest.mark.slow
@pytest.mark.benchmark
def test_search_efficiency_quick(tmp_path):
    run_benchmark(tmp_path, "-m", "benchmarks.search_efficiency")
    table = pd.read_csv(tmp_path / "search_efficiency-quick.csv")
    assert set(table["searcher"]) == {"hpsearch", "random", "optuna"}
    finished = table.dropna(subset=["best_val_acc"])  # on a loaded machine a searcher may finish no epoch
    assert len(finished) >= 1 and finished["best_val_acc"].between(0, 1).all()


def test_search_efficiency_times_every_searcher_to_the_accuracy_all_runs_reached():
    from benchmarks.search_efficiency import summarize

    rows = [  # (seconds, val_acc) per epoch; hpsearch gets to 0.7 at 30 s, random at 90 s
        {"searcher": "hpsearch", "seed": 0, "best_val_acc": 0.75, "test_acc_of_best": 0.7, "trials": 9, "wall_s": 100,
         "curve": ([10, 30, 50], [0.5, 0.72, 0.75])},
        {"searcher": "random", "seed": 0, "best_val_acc": 0.70, "test_acc_of_best": 0.6, "trials": 3, "wall_s": 100,
         "curve": ([40, 90], [0.6, 0.70])},
        {"searcher": "optuna", "seed": 0, "best_val_acc": float("nan"), "test_acc_of_best": float("nan"), "trials": 0,
         "wall_s": 100, "curve": ([], [])},
    ]
    table, summary, target = summarize(rows, None)
    assert target == 0.70  # the lowest best accuracy; a run with no epoch does not count
    assert table["time_to_target_s"].tolist()[:2] == [30.0, 90.0] and pd.isna(table["time_to_target_s"].iloc[2])
    assert summary.set_index("searcher").loc["hpsearch", "time_vs_random"] == pytest.approx(1 / 3)
    _, _, given = summarize(rows, 0.74)
    assert given == 0.74


def test_search_efficiency_counts_the_seeds_where_the_default_matches_random_search():
    from benchmarks.search_efficiency import seeds_won

    table = pd.DataFrame({"searcher": ["hpsearch", "random"] * 3 + ["optuna"], "seed": [0, 0, 1, 1, 2, 2, 0],
                          "best_val_acc": [0.74, 0.74, 0.70, 0.72, 0.75, float("nan"), 0.9]})
    assert seeds_won(table) == (1, 2)  # a tie counts; seed 2 has no random result; optuna is not compared
    assert seeds_won(table.assign(best_val_acc=[0.8, 0.7, 0.8, 0.7, 0.8, 0.7, 0.9])) == (3, 3)


def test_gpu_check_is_skipped_with_a_message_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the check itself runs (python -m benchmarks.gpu_check)")
    env = {**os.environ, "HPSEARCH_BENCH_RESULTS": str(tmp_path), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "gpu_check skipped: no CUDA GPU" in result.stdout
    assert not list(tmp_path.iterdir())  # no table written without a GPU


def synthetic_curves(configs: int = 24, epochs: int = 4) -> pd.DataFrame:
    """A learning-curve table like `search_simulation record` writes: accuracy rises with lr, resnet10t learns
    faster and costs more per epoch."""
    rng = np.random.default_rng(0)
    rows = []
    for config in range(configs):
        backbone = ["tutorial_cnn", "resnet10t"][config % 2]
        lr = float(10 ** rng.uniform(-3.5, -2))
        top = 0.5 + 0.4 * (np.log10(lr) + 3.5) / 1.5 + (0.05 if backbone == "resnet10t" else 0.0)
        for epoch in range(1, epochs + 1):
            rows.append({"dataset": "digits", "config": config, "epoch": epoch, "backbone": backbone, "lr": lr,
                         "weight_decay": 1e-3, "drop_rate": 0.1, "aug_strength": 0.5,
                         "val_acc": top * (1 - 0.5 ** epoch), "epoch_seconds": 2.0 if backbone == "resnet10t" else 1.0,
                         "val_images": 270})
    return pd.DataFrame(rows)


def test_the_surrogate_predicts_curves_and_costs_of_unseen_configurations():
    from benchmarks.surrogate import Surrogate

    surrogate = Surrogate.fit(synthetic_curves())
    assert surrogate.epochs == 4 and surrogate.configs == 24 and surrogate.cv_r2_final > 0.5
    config = {"backbone": "resnet10t", "lr": 9e-3, "weight_decay": 1e-3, "drop_rate": 0.1, "aug_strength": 0.5}
    curve, seconds = surrogate.predict(config, seed=1)
    low, _ = surrogate.predict({**config, "lr": 4e-4}, seed=1)
    assert curve.shape == (4,) and curve[-1] > low[-1] and curve[-1] > curve[0]
    assert seconds == pytest.approx(2.0, rel=0.2)
    again, _ = surrogate.predict(config, seed=1)
    other, _ = surrogate.predict(config, seed=2)
    assert np.array_equal(curve, again) and not np.array_equal(curve, other)  # seeded noise, like a rerun
    noisy, truth, _ = surrogate.replay_curves(config, seed=1)  # the noise-free curve the replay draws around
    assert np.array_equal(noisy, curve) and np.allclose(truth, surrogate.mean_curves(pd.DataFrame([config]))[0][0])
    assert not np.allclose(truth, curve)


def test_the_replayed_noise_is_the_recorded_curves_jitter_per_epoch():
    """Large jitter in the first epochs, small in the last, as measured; not a binomial draw of one size."""
    from benchmarks.surrogate import epoch_noise

    rng = np.random.default_rng(0)
    epochs, sd = np.arange(1, 11), np.linspace(0.05, 0.01, 10)
    tops = rng.uniform(0.6, 0.8, size=(2000, 1))
    acc = tops * (1 - 0.6 ** epochs) + rng.normal(0.0, sd, size=(2000, 10))
    estimate = epoch_noise(acc, val_images=496)
    assert estimate.shape == (10,)
    assert np.allclose(estimate[1:-1], sd[1:-1], rtol=0.2)  # the curves' shared bend is not counted as noise
    assert estimate[0] == estimate[1] and estimate[-1] == estimate[-2]
    two = epoch_noise(acc[:, :2], val_images=496)  # too short to tell jitter: the binomial sd
    final = acc[:, 1].mean()
    assert np.allclose(two, np.sqrt(final * (1 - final) / 496)) and two.shape == (2,)


def test_the_replayed_noise_shrinks_near_a_perfect_score():
    """Curves that end near 1.0 after steep, jittery first epochs (digits at 32 px) must not replay as perfect
    scores: clipped Gaussian noise of the first epochs' size puts 7.8% of the later epochs' draws here at 1.0."""
    from benchmarks.surrogate import NOISE_BAND, Surrogate, bounded_noise

    noise = np.array([0.13, 0.05, 0.01, 0.003])
    curve = np.array([0.5, 0.95, 0.99, 0.999])
    shrunk = bounded_noise(curve, noise)
    assert shrunk[0] == noise[0]  # far from both bounds: the recorded jitter as it is
    assert np.allclose(shrunk[1:], (1 - curve[1:]) / NOISE_BAND) and (shrunk[1:] < noise[1:]).all()
    assert bounded_noise(np.array([0.02, 1.0, 1.2]), np.full(3, 0.05)).tolist() == pytest.approx([0.02 / 3, 0, 0])

    table = synthetic_curves(epochs=5)
    steep = table["epoch"].map({1: 0.3, 2: 0.97, 3: 0.985, 4: 0.99, 5: 0.99})
    table["val_acc"] = steep - 0.02 * (table["config"] % 3) + 0.4 * (table["epoch"] == 1) * (table["config"] % 2)
    surrogate = Surrogate.fit(table)
    assert surrogate.noise[0] > 0.04  # the steep first epochs read as large jitter
    config = {"backbone": "resnet10t", "lr": 1e-3, "weight_decay": 1e-3, "drop_rate": 0.1, "aug_strength": 0.5}
    draws = np.array([surrogate.predict(config, seed)[0] for seed in range(300)])
    assert (draws[:, 1:] == 1.0).mean() < 0.01


def test_the_empirical_random_search_is_the_best_of_drawn_recorded_curves():
    from benchmarks.surrogate import empirical_random_best

    table = synthetic_curves()
    best = table.groupby("config")["val_acc"].max().sort_values()
    assert empirical_random_best(table, trials=500) == pytest.approx(best.iloc[-1])
    one = empirical_random_best(table, trials=1, draws=4001)  # the median configuration's best
    assert best.iloc[10] <= one <= best.iloc[13]


def test_the_simulated_clock_charges_every_trained_epoch_once():
    from types import SimpleNamespace

    from benchmarks.search_simulation import SimulatedClock

    clock = SimulatedClock(overhead=0.5)
    a, b = SimpleNamespace(trial_id="a"), SimpleNamespace(trial_id="b")
    for trial, epoch, acc, exploited in ((a, 1, 0.5, False), (a, 2, 0.6, False), (b, 1, 0.4, False),
                                         (a, 4, 0.7, False), (b, 3, 0.75, True)):
        clock.on_trial_result(0, [], trial, {"epoch": epoch, "val_acc": acc, "sim_seconds": 10.0,
                                              "exploited": exploited})
    # a: epochs 1, 2, then 3 (its result lost while pausing) and 4; b: epoch 1, then one epoch after an exploit
    assert clock.epochs == 6 and clock.now == pytest.approx(6 * 10.0 + 2 * 0.5)
    assert clock.time_to(0.6) == pytest.approx(20.5) and clock.time_to(0.75) == clock.now
    assert clock.time_to(0.9) == float("inf")


def test_the_simulated_clock_follows_the_incumbents_noise_free_accuracy():
    """The incumbent is the best reported epoch (a tie keeps the earlier); its noise-free accuracy can fall when a
    lucky draw of a worse configuration takes over, which the best reported accuracy never shows."""
    from types import SimpleNamespace

    from benchmarks.search_simulation import SimulatedClock

    clock = SimulatedClock(overhead=0.0)
    a, b, c = (SimpleNamespace(trial_id=t) for t in "abc")
    trues = []
    for trial, acc, true in ((a, 0.70, 0.72), (b, 0.70, 0.60), (b, 0.74, 0.65), (c, 0.73, 0.80)):
        clock.on_trial_result(0, [], trial, {"epoch": 1, "val_acc": acc, "true_acc": true, "sim_seconds": 10.0})
        trues.append(clock.incumbent_true)
    assert trues == [0.72, 0.72, 0.65, 0.65] and clock.best == 0.74


def test_the_incumbent_table_compares_what_searches_hand_over():
    from benchmarks.search_simulation import incumbent_note, incumbents

    runs = pd.DataFrame([{"searcher": "random", "seed": s, "final_best": 0.76, "final_true": 0.74 + 0.001 * s}
                         for s in range(8)]
                        + [{"searcher": "tpe", "seed": s, "final_best": 0.78, "final_true": 0.70 + 0.001 * s}
                           for s in range(8)])
    table = incumbents(runs).set_index("searcher")  # luckier, not better: the noise-free accuracy says so
    assert table.loc["tpe", "median_final_true"] == pytest.approx(0.7035)
    assert table.loc["tpe", "median_optimism"] == pytest.approx(0.0765) and table.loc["tpe", "p_true_vs_random"] < 0.05
    assert table.loc["random", "seeds"] == 8 and "median_optimism" in incumbent_note(runs)


def test_the_simulation_summary_compares_every_searcher_with_random_search():
    from types import SimpleNamespace

    from benchmarks.search_simulation import summarize, verdict

    def run(searcher, seed, final, reached_at):
        clock = SimpleNamespace(time_to=lambda target: reached_at if final >= target else float("inf"))
        return {"searcher": searcher, "seed": seed, "clock": clock, "epochs": 10, "sim_s": 100.0,
                "final_best": final, "wall_s": 1.0}

    runs = [run("random", s, 0.80 + 0.01 * s, 90.0 + s) for s in range(8)]
    runs += [run("tpe_asha", s, 0.90, 20.0 + s) for s in range(8)]
    summary, target = summarize(pd.DataFrame(runs))
    assert target == pytest.approx(0.835)  # random search's median final best
    row = summary.set_index("searcher").loc["tpe_asha"]
    assert row["reached_target"] == 8 and row["time_vs_random"] == pytest.approx(23.5 / 100.0)  # of a whole search
    assert row["p_time_vs_random"] < 0.05 and row["p_final_vs_random"] < 0.05
    assert summary.set_index("searcher").loc["random", "reached_target"] == 4
    assert "MET" in verdict(summary) and "NOT MET" not in verdict(summary)


def test_a_replayed_searcher_may_carry_budget_settings_of_its_own(tmp_path):
    """`tpe_asha[grace_period=4;reduction_factor=2]` replays TPE + ASHA with those settings and the recipe's defaults
    for the rest; an unknown searcher, a setting a replay may not change or a value that is not a literal is refused
    with the choices."""
    from benchmarks.search_simulation import replay_recipe, searcher_budget
    from hpsearch.recipe import load_recipe
    from hpsearch.search.budget import BudgetConfig

    def budget(searcher: str) -> BudgetConfig:
        path = tmp_path / "recipe.py"
        path.write_text(replay_recipe(searcher, seed=3, trials=7, epochs=12))
        return load_recipe(path).budget

    plain, variant = budget("tpe_asha"), budget("tpe_asha[grace_period=4;reduction_factor=2]")
    defaults = BudgetConfig()
    assert (plain.sampler, plain.scheduler, plain.grace_period, plain.reduction_factor) == (
        "tpe", "asha", defaults.grace_period, defaults.reduction_factor)
    assert (variant.sampler, variant.scheduler, variant.grace_period, variant.reduction_factor) == ("tpe", "asha", 4, 2)
    assert (variant.num_samples, variant.max_epochs, variant.max_concurrent) == (7, 12, 1)
    assert budget("random").sampler == "random" and budget("random").scheduler == "fifo"
    assert (budget("tpe[sampler='cmaes']").sampler, budget("tpe[sampler='cmaes']").scheduler) == ("cmaes", "fifo")
    for bad, message in (("sobol", "Unknown searcher 'sobol'.*'random'"),
                         ("tpe_asha[lr=1]", "'lr' is not.*grace_period"),
                         ("tpe_asha[grace_period=four]", "Python literal")):
        with pytest.raises(ValueError, match=message):
            searcher_budget(bad)


@pytest.mark.slow
def test_search_simulation_quick(tmp_path):
    run_benchmark(tmp_path, "-m", "benchmarks.search_simulation")
    table = pd.read_csv(tmp_path / "search_simulation-quick.csv")
    assert set(table["searcher"]) == {"random", "tpe_asha", "pbt"} and (table["seeds"] == 2).all()
    assert table["median_final_best"].between(0, 1).all()
    text = (tmp_path / "search_simulation-quick.md").read_text()
    assert "simulated seconds" in text and "median_optimism" in text  # and what the searches hand over


@pytest.mark.slow
@pytest.mark.benchmark
def test_search_simulation_record_continues_in_its_run_directory(tmp_path):
    """`record --run-dir` keeps the recording: the same command with more configurations extends it, once more
    only rewrites the table, and other settings or fewer configurations are refused in one line."""
    args = ["-m", "benchmarks.search_simulation", "record", "--dataset", "digits", "--max-epochs", "2",
            "--image-size", "8", "--run-dir", str(tmp_path / "rec" / "run"), "--table", str(tmp_path / "t.csv.gz")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}

    def record(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args, *extra], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=600)

    for configs in (1, 2, 2):
        (tmp_path / "t.csv.gz").unlink(missing_ok=True)
        result = record("--configs", str(configs))
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        table = pd.read_csv(tmp_path / "t.csv.gz")
        assert sorted(table["config"].unique()) == list(range(configs)) and set(table["epoch"]) == {1, 2}
    assert "Continuing the recording" in result.stdout
    assert table[["lr", "val_acc", "epoch_seconds"]].notna().all().all() and (table["val_images"] > 0).all()
    refused = record("--configs", "2", "--seed", "5")
    assert refused.returncode != 0 and "--seed 0 (not 5)" in refused.stderr.strip().splitlines()[-1]
    refused = record("--configs", "1")
    assert refused.returncode != 0 and "cannot shrink it" in refused.stderr.strip().splitlines()[-1]
    refused = record("--configs", "2", "--ema-decay", "0.99")
    assert refused.returncode != 0 and "--ema-decay 0.0 (not 0.99)" in refused.stderr.strip().splitlines()[-1]


def test_a_recording_with_averaging_trains_every_trial_with_it(tmp_path):
    from benchmarks.search_simulation import record_recipe
    from hpsearch.recipe import load_recipe

    for decay in (0.0, 0.995):
        recipe = load_recipe(record_recipe(tmp_path / str(decay), "digits", 3, 4, 8, 0, ema_decay=decay))
        assert recipe.train.ema_decay == decay and recipe.budget.num_samples == 3


def noisy_curves(sd: float = 0.02) -> pd.DataFrame:
    """``synthetic_curves`` with jitter of ``sd`` per epoch, rounded to the validation images."""
    table = synthetic_curves(configs=40, epochs=6)
    rng = np.random.default_rng(3)
    table["val_acc"] = np.round(np.clip(table["val_acc"] + rng.normal(0, sd, len(table)), 0, 1) * 270) / 270
    return table


def test_the_bounds_chance_of_reaching_a_target_is_the_replays_own():
    """``reach_probability`` (the bound's analytic chance that one replayed run shows the target at some epoch)
    agrees with replaying that configuration under 1,000 seeds through ``predict``."""
    from benchmarks.surrogate import Surrogate

    surrogate = Surrogate.fit(noisy_curves())
    config = {"backbone": "resnet10t", "lr": 5e-3, "weight_decay": 1e-3, "drop_rate": 0.1, "aug_strength": 0.5}
    curves, seconds = surrogate.mean_curves(pd.DataFrame([config]))
    assert seconds[0] == pytest.approx(surrogate.predict(config, 0)[1])
    target = np.ceil(curves[0].max() * 270) / 270  # just above the mean curve: some runs reach it, not all
    analytic = float(surrogate.reach_probability(curves, target)[0])
    replayed = np.mean([surrogate.predict(config, seed)[0].max() >= target - 1e-12 for seed in range(1000)])
    assert 0.1 < analytic < 0.9 and replayed == pytest.approx(analytic, abs=0.05)


NEIGHBOUR_CORR = 0.7


def repeated_runs(configs: int = 200, epochs: int = 6) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """(a table, second runs of all its configurations, the runs' noise sd per epoch): each run's noise falls from
    0.03 to 0.01 over the epochs and correlates ``NEIGHBOUR_CORR ** lag`` between epochs; the second runs sit 0.01
    higher on average (another machine, say), which is not noise."""
    table = synthetic_curves(configs, epochs)
    sd = np.linspace(0.03, 0.01, epochs)
    lags = np.abs(np.subtract.outer(np.arange(epochs), np.arange(epochs)))
    noise = np.random.default_rng(5).multivariate_normal(np.zeros(epochs), NEIGHBOUR_CORR ** lags * np.outer(sd, sd),
                                                         size=(2, configs))
    repeats = table[["dataset", "config", "epoch"]].assign(val_acc=table["val_acc"] + noise[1].ravel() + 0.01)
    table["val_acc"] += noise[0].ravel()  # rows run config by config, epoch by epoch
    return table, repeats, sd


def test_the_run_to_run_covariance_is_measured_from_repeated_configurations():
    from benchmarks.surrogate import repeat_covariance

    table, repeats, sd = repeated_runs()
    covariance, count = repeat_covariance(table, repeats)
    assert count == 200 and covariance.shape == (6, 6)
    measured_sd = np.sqrt(np.diag(covariance))
    assert np.allclose(measured_sd, sd, rtol=0.15)  # each run's own noise: half the pairs' difference variance
    neighbours = np.diag(covariance, 1) / (measured_sd[:-1] * measured_sd[1:])
    assert np.allclose(neighbours, NEIGHBOUR_CORR, atol=0.12)
    assert repeat_covariance(table, repeats[repeats["config"] < 50])[1] == 50  # only the repeated ones count
    with pytest.raises(ValueError, match="epochs"):
        repeat_covariance(table, repeats[repeats["epoch"] < 6])
    with pytest.raises(ValueError, match="needs more than 6"):
        repeat_covariance(table, repeats[repeats["config"] < 6])


def test_the_replay_draws_a_runs_noise_jointly_over_its_epochs():
    """With repeats, replayed runs of one configuration vary by the measured sd at each epoch and stay lucky from
    one epoch to the next; without, epochs are independent. The bound's chance of reaching a target (now
    counted over its own seeded replays) agrees with 2,000 other replays of the configuration."""
    from benchmarks.surrogate import Surrogate

    table, repeats, sd = repeated_runs()
    correlated, independent = Surrogate.fit(table, repeats=repeats), Surrogate.fit(table)
    assert correlated.repeats == 200 and independent.noise_corr is None
    assert "correlated" in correlated.noise_model() and "independent" in independent.noise_model()
    config = {"backbone": "resnet10t", "lr": 2e-3, "weight_decay": 1e-3, "drop_rate": 0.1, "aug_strength": 0.5}
    curves, _ = correlated.mean_curves(pd.DataFrame([config]))
    noisy, truth, _ = correlated.replay_curves(config, seed=0)  # a trial's replay is one such measurement
    assert np.allclose(truth, curves[0]) and not np.allclose(noisy, truth)
    many = np.repeat(curves, 2000, axis=0)  # 2,000 runs of the configuration, as many seeds would replay it
    runs = correlated.measure(many, np.random.default_rng(1))
    assert np.allclose(runs.std(axis=0), sd, rtol=0.2)
    assert np.corrcoef(runs[:, 3], runs[:, 4])[0, 1] == pytest.approx(NEIGHBOUR_CORR, abs=0.1)
    apart = independent.measure(many, np.random.default_rng(1))
    assert abs(np.corrcoef(apart[:, 3], apart[:, 4])[0, 1]) < 0.1

    target = np.ceil(curves[0].max() * 270) / 270
    chance = float(correlated.reach_probability(curves, target)[0])
    replayed = np.mean(runs.max(axis=1) >= target - 1e-12)
    assert 0.1 < chance < 0.9 and replayed == pytest.approx(chance, abs=0.05)


def test_a_tables_repeats_file_sits_beside_it_and_is_read_with_it(tmp_path):
    from benchmarks.rung_averaging import write_repeats
    from benchmarks.surrogate import load_surrogate, repeats_path

    path = tmp_path / "learning_curves_flowers_ema.csv.gz"
    assert repeats_path(path) == tmp_path / "learning_curves_flowers_ema_repeats.csv.gz"
    table, repeats, _ = repeated_runs(configs=40)
    table.to_csv(path, index=False, compression="gzip")
    assert load_surrogate(path).noise_corr is None  # no repeats: the curves' jitter
    saved = repeats.rename(columns={"val_acc": "average"}).assign(trained=0.0, backbone="resnet10t")
    written = pd.read_csv(write_repeats(saved, repeats_path(path)))
    assert list(written.columns) == ["dataset", "config", "epoch", "val_acc"]
    assert np.allclose(written["val_acc"], repeats["val_acc"], atol=1e-5)  # the average's curves, not the trained
    assert load_surrogate(path).repeats == 40


def test_the_bound_ranks_an_oracle_above_random_search():
    from benchmarks.search_simulation import median_runs, search_bound, space_draws
    from benchmarks.surrogate import Surrogate, curves

    table = noisy_curves()
    surrogate = Surrogate.fit(table)
    recorded = curves(table)[0]
    configs = space_draws(recorded, 2000)
    assert set(configs["backbone"]) == {"tutorial_cnn", "resnet10t"}
    assert configs["lr"].between(recorded["lr"].min(), recorded["lr"].max()).all()
    bound, target = search_bound(surrogate, configs, trials=30, overhead=0.5)
    baseline, *oracles, stop_first, stop_rung = bound.to_dict("records")
    assert baseline["searcher"] == "random" and baseline["median_trials"] == median_runs(baseline["reach_per_trial"])
    assert 0.0 < target <= 1.0 and baseline["time_vs_random"] <= 1.0  # half of all random searches reach it in time
    times = [row["median_time_s"] for row in oracles]
    assert len(oracles) == 3 and times == sorted(times) and times[-1] <= baseline["median_time_s"]  # better: sooner
    assert "resnet10t" in oracles[0]["configuration"]  # the high-lr resnet10t corner (synthetic_curves' best)
    # early stops that are never wrong: random search's trials, the ones that miss cut short; later: costlier
    rung = surrogate.epochs // 3
    assert stop_first["searcher"].endswith("epoch 1") and stop_rung["searcher"].endswith(f"epoch {rung}")
    assert stop_first["median_trials"] == stop_rung["median_trials"] == baseline["median_trials"]
    assert stop_first["median_time_s"] < stop_rung["median_time_s"] < baseline["median_time_s"]
    assert median_runs(0.5) == 1 and median_runs(0.1) == 7  # 1 - 0.9**7 >= 0.5 > 1 - 0.9**6


def test_early_stops_at_the_last_epoch_cost_what_random_search_costs():
    from benchmarks.search_simulation import early_stop_row, median_runs
    from benchmarks.surrogate import Surrogate

    surrogate = Surrogate.fit(noisy_curves())
    seconds = np.array([1.0, 2.0, 6.0])
    reach = np.full(3, 0.1)  # the same chance everywhere: nothing to learn from it, every trial costs the mean
    row = early_stop_row(surrogate, reach, seconds, overhead=0.5, epoch=surrogate.epochs, random_total=1000.0)
    full = surrogate.epochs * seconds.mean() + 0.5
    assert row["median_trials"] == median_runs(0.1) and row["median_time_s"] == pytest.approx(7 * full)
    reach = np.array([0.0, 0.0, 0.3])  # only the costly one reaches: it trains in full, the misses one epoch each
    row = early_stop_row(surrogate, reach, seconds, overhead=0.5, epoch=1, random_total=1000.0)
    stopped = (1.5 * 1.0 + 2.5 * 1.0 + 6.5 * 0.7) / 2.7  # one epoch + overhead, weighted by the chance of missing
    assert row["median_time_s"] == pytest.approx(6 * stopped + surrogate.epochs * 6.0 + 0.5)
    assert row["time_vs_random"] == pytest.approx(row["median_time_s"] / 1000.0)


def test_a_rung_that_is_never_wrong_keeps_every_reaching_trial_and_costs_least():
    from benchmarks.search_rungs import MEASURES, rung_table
    from benchmarks.search_simulation import search_bound, space_draws
    from benchmarks.surrogate import Surrogate, curves

    table = noisy_curves()
    surrogate = Surrogate.fit(table)
    configs = space_draws(curves(table)[0], 600)
    rows, target = rung_table(surrogate, configs, target=0.8, rung=2, reduction_factor=3, trials=30, overhead=0.5,
                              draws=2)
    rows = rows.set_index("rung_keeps_by")
    assert target == 0.8 and rung_table(surrogate, configs, None, 2, 3, 30, 0.5, 1)[1] == search_bound(
        surrogate, configs, trials=30, overhead=0.5)[1]  # no target given: the bound's own
    assert list(rows.index[:-1]) == list(MEASURES) and rows.index[-1].startswith("never wrong")
    never = rows.iloc[-1]
    assert never["reachers_kept"] == 1.0 and never["time_vs_random"] == rows["time_vs_random"].min()
    assert rows["reachers_kept"].between(0, 1).all() and (rows["reach_per_trial"] <= never["reach_per_trial"]).all()
    # keeping a third costs a third of the trials in full and the rest two epochs of six
    mean = surrogate.mean_curves(configs)[1]
    third = (6 * mean + 0.5) / 3 + (2 * mean + 0.5) * 2 / 3
    assert rows.loc["noise-free final accuracy (an oracle)", "trial_s"] == pytest.approx(third.mean(), rel=0.02)


def test_the_rung_outcome_counts_the_reaching_trials_it_keeps():
    from benchmarks.search_rungs import outcome

    kept = np.array([True, False, True, False])
    reach = np.array([True, True, False, False])
    share, p, cost = outcome(kept, reach, full=np.full(4, 10.0), stopped=np.full(4, 2.0))
    assert (share, p, cost) == (0.5, 0.25, 6.0)
    share, p, _ = outcome(kept, np.zeros(4, dtype=bool), full=np.full(4, 10.0), stopped=np.full(4, 2.0))
    assert np.isnan(share) and p == 0.0  # nothing reached: no share to count, left out of the mean over draws


def test_search_rungs_quick(tmp_path):
    run_benchmark(tmp_path, "-m", "benchmarks.search_rungs")
    table = pd.read_csv(tmp_path / "search_rungs-quick.csv")
    assert len(table) == 5 and table["reachers_kept"].between(0, 1).all() and table["reachers_kept"].iloc[-1] == 1.0


def test_search_rungs_reads_another_table_with_its_repeats(tmp_path):
    table, repeats, _ = repeated_runs(configs=40)
    path = tmp_path / "curves.csv.gz"
    table.to_csv(path, index=False, compression="gzip")
    repeats.to_csv(tmp_path / "curves_repeats.csv.gz", index=False, compression="gzip")
    run_benchmark(tmp_path, "-m", "benchmarks.search_rungs", "--dataset", "digits", "--table", str(path),
                  "--results", "rungs_of_curves")
    notes = (tmp_path / "rungs_of_curves-quick.md").read_text()
    assert "(curves.csv.gz)" in notes and "as 40 repeated configurations show" in notes


def test_rung_stats_count_the_final_top_third_the_rung_keeps():
    from benchmarks.rung_averaging import rung_stats

    final = np.arange(9, dtype=float)  # the top third: the last three
    assert rung_stats(final + 1.0, final) == (1.0, pytest.approx(1.0))  # the same order: all kept
    assert rung_stats(-final, final) == (0.0, pytest.approx(-1.0))  # reversed: none kept
    rung = np.array([0, 1, 2, 3, 4, 8, 5, 6, 7], dtype=float)  # top three at the rung: configurations 5, 7, 8
    kept, rho = rung_stats(rung, final)
    assert kept == pytest.approx(2 / 3) and 0.5 < rho < 1.0


def test_rung_table_scores_each_scoring_and_bounds_their_difference():
    """A scoring whose rung order is its final order keeps the whole top third; one whose rung order is shuffled
    keeps less, and the bootstrap interval of the difference lies above zero."""
    from benchmarks.rung_averaging import rung_table

    rng = np.random.default_rng(0)
    final = rng.permutation(30) / 30
    rows = []
    for config, value in enumerate(final):
        shuffled = rng.uniform(0.2, 0.4)  # the trained weights' rung: unrelated to how they end
        for epoch, (trained, average) in enumerate([(shuffled, value / 2), (value, value)], start=1):
            rows.append({"config": config, "epoch": epoch, "trained": trained, "average": average})
    table = rung_table(pd.DataFrame(rows), rungs=[1]).iloc[0]
    assert table["kept_average"] == 1.0 and table["spearman_average"] == pytest.approx(1.0)
    assert table["kept_trained"] < 0.7 and abs(table["spearman_trained"]) < 0.5
    low = float(table["kept_diff_ci"].split(" to ")[0])
    assert low > 0


def test_rung_averaging_says_which_training_seeds_it_used():
    from benchmarks.rung_averaging import notes

    curves = pd.DataFrame([{"config": config, "epoch": epoch, "average": 0.5, "trained": 0.5}
                           for config in (4, 12) for epoch in (1, 2)])
    own = notes(curves, seed=0, image_size=32, ema_decay=0.995, source="curves.csv")[0]
    other = notes(curves, seed=0, image_size=32, ema_decay=0.995, source="curves.csv", seed_offset=1000)[0]
    assert "the training seed is the configuration's number)" in own
    assert "the training seed is the configuration's number + 1000)" in other


@pytest.mark.benchmark
@pytest.mark.skipif(not SHARED_ARCHIVE.is_file(), reason="needs ../shared/data/flower_photos_s160.tgz")
def test_rung_averaging_quick(tmp_path):
    run_benchmark(tmp_path, "-m", "benchmarks.rung_averaging")
    table = pd.read_csv(tmp_path / "rung_averaging-quick.csv")
    curves = pd.read_csv(tmp_path / "rung_averaging_curves-quick.csv")
    assert list(table["rung_epoch"]) == [1, 2] and table[["kept_trained", "kept_average"]].stack().between(0, 1).all()
    assert len(curves) == 4 * 3 and curves[["trained", "average"]].stack().between(0, 1).all()
