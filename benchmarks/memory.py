"""Benchmark 4: peak memory with 1 and with 2 concurrent trials; the dataset must be held once.

Runs `hpsearch tune` (the tutorial CNN, one epoch per trial) on flowers at 128 px (digits at 64 px in
--quick mode) with one and then two trials at a time, sampling /proc every 0.2 s (see `sample`). Trials
map the decoded arrays from Ray's object store, so the images appear in each trial's shared memory and
not in its private heap.

    python -m benchmarks.memory [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import ROOT, flowers_url, scratch_folder, write_results

RECIPE = '''
name = "memory"
seed = 0
data = dict({data})
train = dict(backbone="tutorial_cnn", batch_size=32)
budget = dict(num_samples=2, max_epochs=1, grace_period=1, cpus_per_trial=1, max_concurrent={concurrent})

def space(trial, options):
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


def sample(pid: int) -> dict[str, int]:
    """Memory of the process tree now, in KiB: resident and proportional (shared pages split between
    their users, so the tree's sum counts them once) totals, and per trial process its private heap
    (RssAnon: model, optimizer, activations, any copy of the data) and its shared memory (RssShmem: the
    object store's pages it maps, the decoded images among them)."""
    now = {"rss_tree": 0, "pss_tree": 0, "anon_per_trial": 0, "shmem_per_trial": 0}
    for p in tree(pid):
        status = Path(f"/proc/{p}/status")
        now["rss_tree"] += kib(status, "VmRSS:")
        now["pss_tree"] += kib(Path(f"/proc/{p}/smaps_rollup"), "Pss:")
        try:
            name = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if "ImplicitFunc" in name or "run_trial" in name:
            now["anon_per_trial"] = max(now["anon_per_trial"], kib(status, "RssAnon:"))
            now["shmem_per_trial"] = max(now["shmem_per_trial"], kib(status, "RssShmem:"))
    return now


def measure(data: str, concurrent: int, folder: Path) -> dict:
    recipe = folder / f"memory{concurrent}.py"
    recipe.write_text(RECIPE.format(data=data, concurrent=concurrent))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HPSEARCH_CACHE": str(folder / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "hpsearch.cli", "tune", str(recipe), "--out",
                             str(folder / f"run{concurrent}")], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    peaks: dict[str, int] = {}
    while proc.poll() is None:
        for key, value in sample(proc.pid).items():
            peaks[key] = max(peaks.get(key, 0), value)
        time.sleep(0.2)
    if proc.returncode != 0:
        raise SystemExit(f"hpsearch tune failed ({proc.returncode}) with {concurrent} concurrent trials")
    return {"concurrent_trials": concurrent, **{f"peak_{key}_mib": value / 1024 for key, value in peaks.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    folder = scratch_folder("hpsearch-memory-")
    if args.quick:
        data, size, n_images, chans = 'source="digits", image_size=64', 64, 1797, 1
    else:
        data = f'source="folder", url={flowers_url()!r}, image_size=128'
        size, n_images, chans = 128, 3303, 3
    rows = [measure(data, concurrent, folder) for concurrent in (1, 2)]
    dataset_mib = n_images * 0.85 * chans * size * size / 2**20  # train + val subsets, uint8
    for row in rows:
        row["decoded_train_val_mib"] = dataset_mib
    notes = ["rss_tree counts shared pages once per process; pss_tree splits them between the processes "
             "that share them (the memory actually used). anon_per_trial: a trial's private heap (model, "
             "optimizer, activations, batches); shmem_per_trial: the shared object-store pages it maps, which "
             "hold the decoded images once for all trials.",
             "Target: the second trial adds about one trial's private heap, not another copy of the dataset."]
    write_results("memory", pd.DataFrame(rows), notes, args.quick)


if __name__ == "__main__":
    main()
