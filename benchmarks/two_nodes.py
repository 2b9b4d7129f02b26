"""Benchmark 7: a flowers search on a 2-node Ray cluster of one machine; each node builds its own cache, once.

Starts ``ray start --head`` and a second ``ray start`` (each node with its own temp dir, its own
``$HPSEARCH_CACHE`` and one CPU), runs ``hpsearch tune`` on flowers (64 px, tutorial CNN, 2 epochs; 32 px and 4
trials in --quick mode) through the head, and reports per node: its trials (``trials.csv``'s ``node_id``), the
entries of its decoded-image cache, when each entry was written, and the first and last epoch its trials reported.
An entry written before the node's first epoch and never after is a cache built once and reused by every later
trial.

    python -m benchmarks.two_nodes [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import flowers_url, free_port, scratch_folder, write_results
from hpsearch.rundir import read_history, read_trials

RECIPE = '''
name = "two_nodes"
seed = 0
data = dict({data})
train = dict(backbone="tutorial_cnn", batch_size=32, patience=10)
budget = dict(num_samples={trials}, max_epochs=2, cpus_per_trial=1, scheduler="fifo")

def space(trial, options):
    trial.suggest_float("lr", 1e-3, 1e-2, log=True)
'''


def start_node(ray_cli: Path, folder: Path, name: str, port: int, env: dict[str, str], head: bool) -> subprocess.Popen:
    """One Ray node with its own temp dir and hpsearch cache, until its process is terminated."""
    where = ["--head", f"--port={port}", "--include-dashboard=false"] if head else [f"--address=127.0.0.1:{port}"]
    node_env = {**env, "HPSEARCH_CACHE": str(folder / f"cache-{name}")}
    return subprocess.Popen([str(ray_cli), "start", *where, "--node-ip-address=127.0.0.1", "--num-cpus=1",
                             f"--temp-dir={folder / f'ray-{name}'}", "--disable-usage-stats", "--block"],
                            env=node_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for_nodes(address: str, count: int, env: dict[str, str], timeout: float = 120) -> dict[str, str]:
    """Once ``count`` nodes are alive: each node's id by the temp dir it was started with (its raylet socket's
    path names it)."""
    probe = (f"import json, ray; ray.init(address={address!r}); "
             "print(json.dumps({n['NodeID']: n['RayletSocketName'] for n in ray.nodes() if n['Alive']}))")
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
        nodes = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else {}
        if len(nodes) == count:
            return nodes
        time.sleep(2)
    raise SystemExit(f"the {count}-node cluster at {address} did not come up within {timeout:.0f} s")


def node_rows(folder: Path, run: Path, sockets: dict[str, str]) -> pd.DataFrame:
    """Per node: trials, cache entries and their write times against the node's first and last epoch."""
    trials, history = read_trials(run), read_history(run)
    rows = []
    for name in ("head", "node2"):
        entries = sorted((folder / f"cache-{name}" / "decoded").glob("*.npy"))
        written = [entry.stat().st_mtime for entry in entries]
        ids = {node for node, socket in sockets.items() if f"/ray-{name}/" in socket}
        node_trials = trials[trials["node_id"].isin(ids)]
        epochs = history[history["trial_id"].isin(node_trials["trial_id"])]
        first, last = (epochs["timestamp"].min(), epochs["timestamp"].max()) if len(epochs) else (None, None)
        rows.append({"node": name, "trials": len(node_trials), "completed": int((node_trials["status"] == "completed")
                                                                                  .sum()),
                     "cache_entries": len(entries), "cache_gib": sum(e.stat().st_size for e in entries) / 2**30,
                     "last_cache_write_s_before_first_epoch": (first - max(written)) if written and first else None,
                     "cache_written_after_first_epoch": bool(written and first and max(written) > first),
                     "epochs_reported": len(epochs), "span_s": (last - first) if first else None})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="flowers at 32 px, 4 trials")
    args = parser.parse_args()
    folder = scratch_folder("hpsearch-two-nodes-")
    # trials of a few seconds at least: shorter ones can all finish on the head before a second one starts
    data = f'source="folder", url={flowers_url()!r}, image_size={32 if args.quick else 64}'

    recipe = folder / "recipe.py"
    recipe.write_text(RECIPE.format(data=data, trials=4 if args.quick else 6))
    ray_cli, port = Path(sys.executable).with_name("ray"), free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": os.urandom(16).hex()}
    nodes = [start_node(ray_cli, folder, "head", port, env, head=True)]
    try:
        wait_for_nodes(f"127.0.0.1:{port}", 1, env)
        nodes.append(start_node(ray_cli, folder, "node2", port, env, head=False))
        sockets = wait_for_nodes(f"127.0.0.1:{port}", 2, env)
        start = time.perf_counter()
        command = [sys.executable, "-m", "hpsearch.cli", "tune", str(recipe), "--out", str(folder / "run"),
                   "--address", f"127.0.0.1:{port}"]
        tune = subprocess.run(command, env={**env, "HPSEARCH_CACHE": str(folder / "cache-head")}, capture_output=True,
                              text=True)
        seconds = time.perf_counter() - start
        if tune.returncode != 0:
            raise SystemExit(f"hpsearch tune failed:\n{tune.stdout[-3000:]}\n{tune.stderr[-3000:]}")
        table = node_rows(folder, folder / "run", sockets)
    finally:
        for node in reversed(nodes):
            node.send_signal(signal.SIGTERM)
            node.wait(timeout=60)
    ok = (table["trials"] > 0).all() and not table["cache_written_after_first_epoch"].any()
    notes = [f"flowers at {32 if args.quick else 64} px, tutorial CNN, 2 epochs per trial, one CPU per "
             f"node; hpsearch tune took {seconds:.0f} s.",
             "cache_entries: the decoded-image cache of each node (training and validation split); an entry written "
             "before the node's first epoch and not after it was built once and reused by the node's later trials.",
             f"Target (issue 13): each node builds its cache once and trials.csv shows trials on both nodes: "
             f"{'MET' if ok else 'NOT MET'}."]
    write_results("two_nodes", table, notes, args.quick)


if __name__ == "__main__":
    main()
