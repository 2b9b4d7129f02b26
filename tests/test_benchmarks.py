"""The benchmarks' --quick modes run end to end (a smoke test: no timing is asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
    assert set(table["method"]) == {"baseline_imagefolder", "bare_tensor_loop", "hpsearch_trial"}
    assert (table["images_per_s"] > 0).all()
    assert "cores" in (tmp_path / "pipeline_throughput-quick.md").read_text()


@pytest.mark.slow
def test_orchestration_overhead_quick(tmp_path):
    run_benchmark(tmp_path, "-m", "benchmarks.orchestration_overhead")
    table = pd.read_csv(tmp_path / "orchestration_overhead-quick.csv")
    assert table.loc[0, "trials"] == 3 and table.loc[0, "hpsearch_tune_s"] > 0


@pytest.mark.slow
def test_memory_quick(tmp_path):
    run_benchmark(tmp_path, "-m", "benchmarks.memory")
    table = pd.read_csv(tmp_path / "memory-quick.csv")
    assert table["concurrent_trials"].tolist() == [1, 2] and (table["peak_rss_tree_mib"] > 0).all()


@pytest.mark.slow
def test_search_efficiency_quick(tmp_path):
    run_benchmark(tmp_path, "-m", "benchmarks.search_efficiency")
    table = pd.read_csv(tmp_path / "search_efficiency-quick.csv")
    assert set(table["searcher"]) == {"hpsearch", "random", "optuna"}
    finished = table.dropna(subset=["best_val_acc"])  # on a loaded machine a searcher may finish no epoch
    assert len(finished) >= 1 and finished["best_val_acc"].between(0, 1).all()
