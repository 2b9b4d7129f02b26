"""Benchmark 4: memory of concurrent trials; the dataset is held once, in file-backed pages, whatever its size.

Part 1 runs `hpsearch tune` (the tutorial CNN, one epoch per trial) on flowers at 128 px (digits at 32 px, 5 steps
per trial in --quick mode) with one and then two trials at a time. Part 2 generates synthetic datasets of 0.5 GiB and
4 GiB of decoded images (straight as arrays, no JPEGs; 64 and 256 MiB in --quick mode) and searches each with
two concurrent trials on a local Ray cluster whose object store is capped at 1 GiB. /proc is sampled every
0.2 s (see `sample`); the object store's use is polled from Ray.

    python -m benchmarks.memory [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import ROOT, flowers_url, free_port, scratch_folder, write_results

RECIPE = '''
name = "memory"
seed = 0
data = dict({data})
train = dict(backbone="tutorial_cnn", batch_size=32, steps_per_epoch={steps})
budget = dict(num_samples=2, max_epochs=1, grace_period=1, cpus_per_trial=1, max_concurrent={concurrent})

def space(trial, options):
    trial.suggest_float("lr", 1e-3, 1e-2, log=True)
'''
FIELDS = {"anon": "RssAnon:", "file": "RssFile:", "shmem": "RssShmem:"}


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


def trial_processes() -> list[int]:
    """Every process running a trial (a Ray actor of the trainable), wherever Ray started it."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            name = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if "ImplicitFunc" in name or "run_trial" in name:
            found.append(int(entry.name))
    return found


def sample(pid: int) -> dict[str, int]:
    """Memory now, in KiB: the driver's process tree (resident, and proportional: shared pages split between
    their users), and per trial process the largest private heap (RssAnon: model, optimizer, activations, any
    copy of the data), file-backed pages (RssFile: the memory-mapped images, shared by every trial of a node
    through the page cache) and shared memory (RssShmem: Ray's object store)."""
    now = {"rss_tree": 0, "pss_tree": 0}
    for p in tree(pid):
        now["rss_tree"] += kib(Path(f"/proc/{p}/status"), "VmRSS:")
        now["pss_tree"] += kib(Path(f"/proc/{p}/smaps_rollup"), "Pss:")
    for p in trial_processes():
        for key, field in FIELDS.items():
            now[f"{key}_per_trial"] = max(now.get(f"{key}_per_trial", 0), kib(Path(f"/proc/{p}/status"), field))
    return now


def run_tune(recipe: Path, out: Path, env: dict, address: str | None = None, poll=None) -> dict[str, int]:
    """Run `hpsearch tune`, sampling memory until it ends; return the peaks (KiB; object store in bytes)."""
    argv = [sys.executable, "-m", "hpsearch.cli", "tune", str(recipe), "--out", str(out)]
    proc = subprocess.Popen(argv + (["--address", address] if address else []), env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peaks: dict[str, int] = {}
    while proc.poll() is None:
        now = {**sample(proc.pid), **(poll() if poll else {})}
        for key, value in now.items():
            peaks[key] = max(peaks.get(key, 0), value)
        time.sleep(0.2)
    if proc.returncode != 0:
        raise SystemExit(f"hpsearch tune failed ({proc.returncode}) for {recipe}")
    return peaks


def measure_flowers(data: str, concurrent: int, folder: Path, steps: int | None = None) -> dict:
    recipe = folder / f"memory{concurrent}.py"
    recipe.write_text(RECIPE.format(data=data, concurrent=concurrent, steps=steps))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HPSEARCH_CACHE": str(folder / "cache")}
    peaks = run_tune(recipe, folder / f"run{concurrent}", env)
    return {"dataset": "flowers" if "folder" in data else "digits", "concurrent_trials": concurrent,
            **{f"peak_{key}_mib": value / 1024 for key, value in peaks.items()}}


def synthetic(root: Path, gib: float, size: int = 128, classes: int = 10) -> Path:
    """A dataset of ``gib`` GiB of decoded uint8 images (N, 3, size, size), written as arrays: no JPEGs."""
    root.mkdir(parents=True, exist_ok=True)
    count = int(gib * 2**30 // (3 * size * size))
    images = np.lib.format.open_memmap(root / "images.npy", mode="w+", dtype=np.uint8, shape=(count, 3, size, size))
    rng = np.random.default_rng(0)
    for start in range(0, count, 2048):
        stop = min(count, start + 2048)
        images[start:stop] = rng.integers(0, 256, (stop - start, 3, size, size), dtype=np.uint8)
    images.flush()
    np.save(root / "labels.npy", np.arange(count) % classes)
    (root / "classes.txt").write_text("\n".join(f"class{c}" for c in range(classes)) + "\n")
    return root


def measure_scale(gibs: list[float], folder: Path, store_bytes: int, steps: int = 30) -> list[dict]:
    """Two concurrent trials per synthetic dataset, on a local cluster whose object store is capped."""
    port, ray_cli = free_port(), Path(sys.executable).with_name("ray")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HPSEARCH_CACHE": str(folder / "cache"),
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(16).hex()}
    subprocess.run([str(ray_cli), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
                    f"--object-store-memory={store_bytes}", "--include-dashboard=false", "--disable-usage-stats"],
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ.update({k: env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")})
    import ray

    try:
        ray.init(address=f"127.0.0.1:{port}", log_to_driver=False)
        total = ray.cluster_resources()["object_store_memory"]

        def store_used() -> dict[str, int]:
            return {"object_store_used_bytes": int(total - ray.available_resources().get("object_store_memory", total))}

        rows = []
        for gib in gibs:
            root = synthetic(folder / f"synthetic-{gib}", gib)
            data = f'source="arrays", root={str(root)!r}, image_size=128'
            recipe = folder / f"scale-{gib}.py"
            recipe.write_text(RECIPE.format(data=data, concurrent=2, steps=steps))
            peaks = run_tune(recipe, folder / f"scale-run-{gib}", env, f"127.0.0.1:{port}", store_used)
            rows.append({"dataset": f"synthetic {gib:g} GiB", "concurrent_trials": 2, "decoded_gib": gib,
                         "object_store_cap_mib": store_bytes / 2**20,
                         **{f"peak_{k}_mib": v / 1024 for k, v in peaks.items() if not k.endswith("bytes")},
                         "peak_object_store_used_mib": peaks.get("object_store_used_bytes", 0) / 2**20})
        return rows
    finally:
        ray.shutdown()
        subprocess.run([str(ray_cli), "stop", "--force"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    folder = scratch_folder("hpsearch-memory-")
    if args.quick:  # a smoke test of both parts: tiny datasets, a few steps per trial
        data, gibs, steps = 'source="digits", image_size=32', [1 / 16, 1 / 4], 5
    else:
        data, gibs, steps = f'source="folder", url={flowers_url()!r}, image_size=128', [0.5, 4.0], None
    rows = [measure_flowers(data, concurrent, folder, steps) for concurrent in (1, 2)]
    rows += measure_scale(gibs, folder, 2**30, steps or 30)
    notes = ["rss_tree counts shared pages once per process; pss_tree splits them between the processes that "
             "share them (the memory actually used). Per trial: anon = its private heap (model, optimizer, "
             "activations, batches); file = file-backed pages it maps (the decoded images, memory-mapped from the "
             "cache and shared by every trial of the node through the page cache); shmem = Ray object-store pages "
             "it maps.",
             "Synthetic rows: a local Ray cluster with its object store capped (object_store_cap_mib); "
             "peak_object_store_used_mib is what Ray's store held at most: trials receive a reference to the cache "
             "file, not the images. 30 steps per trial of the tutorial CNN at 128 px.",
             "Targets: the private heap per trial is the same (within 10%) for the small and the large dataset; "
             "the object store holds no copy of the images."]
    write_results("memory", pd.DataFrame(rows), notes, args.quick)


if __name__ == "__main__":
    main()
