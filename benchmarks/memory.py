"""Benchmark 4: peak memory with 1 and with 2 concurrent trials; the dataset must be held once.

Runs `hpsearch tune` (the tutorial CNN, one epoch per trial) on flowers at 128 px (digits at 64 px in
--quick mode) with one and then two trials at a time, sampling /proc every 0.2 s: the resident memory of
the whole process tree, and the private (unshared) memory of each trial process. Trials map the decoded arrays from Ray's object
store, so a trial's private memory should stay well below the dataset's size.

    python -m benchmarks.memory [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import ROOT, flowers_url, write_results

RECIPE = '''
name = "memory"
seed = 0
data = dict({data})
train = dict(backbone="tutorial_cnn", batch_size=32)
budget = dict(num_samples=2, max_epochs=1, grace_period=1, cpus_per_trial=1, max_concurrent={concurrent})

def space(trial):
    trial.suggest_float("lr", 1e-3, 1e-2, log=True)
'''


def kib(path: Path, field: str) -> int:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree(pid: int) -> list[int]:
    children, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            kids = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            kids = []
        children += [int(k) for k in kids]
        frontier += [int(k) for k in kids]
    return [pid] + children


def sample(pid: int) -> tuple[int, int]:
    """(total RSS of the tree, largest private memory of a trial process), in KiB."""
    total, trial_private = 0, 0
    for p in tree(pid):
        total += kib(Path(f"/proc/{p}/status"), "VmRSS:")
        try:
            name = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if "ImplicitFunc" in name or "run_trial" in name:
            rollup = Path(f"/proc/{p}/smaps_rollup")
            trial_private = max(trial_private, kib(rollup, "Private_Clean:") + kib(rollup, "Private_Dirty:"))
    return total, trial_private


def measure(data: str, concurrent: int, folder: Path) -> dict:
    recipe = folder / f"memory{concurrent}.py"
    recipe.write_text(RECIPE.format(data=data, concurrent=concurrent))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HPSEARCH_CACHE": str(folder / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "hpsearch.cli", "tune", str(recipe), "--out",
                             str(folder / f"run{concurrent}")], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    peak_total, peak_trial = 0, 0
    while proc.poll() is None:
        total, trial = sample(proc.pid)
        peak_total, peak_trial = max(peak_total, total), max(peak_trial, trial)
        time.sleep(0.2)
    if proc.returncode != 0:
        raise SystemExit(f"hpsearch tune failed ({proc.returncode}) with {concurrent} concurrent trials")
    return {"concurrent_trials": concurrent, "peak_rss_tree_mib": peak_total / 1024,
            "peak_private_per_trial_mib": peak_trial / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hpsearch-memory-"))
    if args.quick:
        data, size, n_images, chans = 'source="digits", image_size=64', 64, 1797, 1
    else:
        data = f'source="folder", url={flowers_url()!r}, image_size=128'
        size, n_images, chans = 128, 3303, 3
    rows = [measure(data, concurrent, folder) for concurrent in (1, 2)]
    dataset_mib = n_images * 0.85 * chans * size * size / 2**20  # train + val subsets, uint8
    for row in rows:
        row["decoded_train_val_mib"] = dataset_mib
    notes = ["peak_private_per_trial_mib is the largest private (unshared) memory of one trial process: "
             "model, optimizer, activations and batches; the decoded images are shared from Ray's object store.",
             "Target: the second trial adds about one trial's private memory, not another copy of the dataset."]
    write_results("memory", pd.DataFrame(rows), notes, args.quick)


if __name__ == "__main__":
    main()
