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
@pytest.mark.skipif(not SHARED_ARCHIVE.is_file(), reason="needs ../shared/data/flower_photos_s160.tgz")
def test_pipeline_throughput_quick(tmp_path):
    run_benchmark(tmp_path, "-m", "benchmarks.pipeline_throughput")
    table = pd.read_csv(tmp_path / "pipeline_throughput-quick.csv")
    assert set(table["method"]) == {"baseline_imagefolder", "bare_tensor_loop", "hpsearch_trial",
                                    "hpsearch_trial_allocating"}
    trials = table[table["method"].str.startswith("hpsearch_trial")]
    assert (trials["user_s_per_1k"] > 0).all() and (trials["sys_s_per_1k"] >= 0).all()
    assert (table["images_per_s"] > 0).all()
    assert "cores" in (tmp_path / "pipeline_throughput-quick.md").read_text()


@pytest.mark.slow
def test_orchestration_overhead_quick(tmp_path):
    run_benchmark(tmp_path, "-m", "benchmarks.orchestration_overhead")
    table = pd.read_csv(tmp_path / "orchestration_overhead-quick.csv")
    row = table.iloc[0]
    # the slope compares searches of n and 3n trials: it only means something if every trial ran all its epochs
    assert row["trials"] == 3 and row["trials_completed_n"] == 3 and row["trials_completed_3n"] == 9
    assert np.isfinite(row["marginal_overhead_per_trial_s"]) and row["ray_startup_s"] > 0


@pytest.mark.slow
def test_memory_quick(tmp_path):
    run_benchmark(tmp_path, "-m", "benchmarks.memory")
    table = pd.read_csv(tmp_path / "memory-quick.csv")
    assert table["concurrent_trials"].tolist() == [1, 2, 2, 2] and (table["peak_pss_tree_mib"] > 0).all()
    scale = table.dropna(subset=["decoded_gib"])
    assert len(scale) == 2 and (scale["peak_anon_per_trial_mib"] > 0).all()
    # trials get a reference to the memory-mapped cache, not the images: the object store holds no copy
    assert (scale["peak_object_store_used_mib"] < 0.25 * scale["decoded_gib"] * 1024).all()


@pytest.mark.slow
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


def test_gpu_check_is_skipped_with_a_message_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the check itself runs (python -m benchmarks.gpu_check)")
    env = {**os.environ, "HPSEARCH_BENCH_RESULTS": str(tmp_path), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "gpu_check skipped: no CUDA GPU" in result.stdout
    assert not list(tmp_path.iterdir())  # no table written without a GPU
