"""Benchmark 6: the GPU path, on a machine with a CUDA GPU (under 5 minutes; skipped with a message otherwise).

A bare training loop on the GPU (resnet18, 64 px, batch 128, channels-last, bfloat16) sets the reference; then
`hpsearch tune` runs 1, 2 and 4 trials at once on the same GPU (``--gpus-per-trial`` 1, 0.5, 0.25), each trial
a fixed number of steps per epoch. Reported: training images per second (all concurrent trials together)
against the bare loop, and the GPU's utilisation sampled with nvidia-smi while the trials run.

    python -m benchmarks.gpu_check
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pandas as pd
import torch

from benchmarks.common import scratch_folder, write_results
from hpsearch.rundir import read_history

STEPS, BATCH, SIZE, EPOCHS = 40, 128, 64, 3
RECIPE = '''
name = "gpu"
seed = 0
data = dict(source="digits", image_size={size})
train = dict(backbone="resnet18", batch_size={batch}, steps_per_epoch={steps}, flip=False)
budget = dict(num_samples={k}, max_epochs={epochs}, grace_period={epochs}, cpus_per_trial=1, gpus_per_trial={gpus},
              max_concurrent={k})

def space(trial, options):
    trial.suggest_float("lr", 1e-3, 1e-2, log=True)
'''


def bare_loop() -> float:
    """Images per second of resnet18 training on random images, all on the GPU."""
    from hpsearch.models import create_model

    model = create_model("resnet18", 10, 1, SIZE).cuda().to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(BATCH, 1, SIZE, SIZE, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (BATCH,), device="cuda")

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(10):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(STEPS):
        step()
    torch.cuda.synchronize()
    return STEPS * BATCH / (time.perf_counter() - start)


class Utilisation(threading.Thread):
    """nvidia-smi's GPU utilisation, sampled every half second while it runs."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.running = True

    def run(self) -> None:
        while self.running:
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, check=False).stdout.split()
            if out:
                self.samples.append(float(out[0]))
            time.sleep(0.5)


def concurrent_trials(k: int, folder) -> dict[str, float]:
    """Run k trials at once on the GPU; return their summed steady-state images per second and utilisation."""
    recipe = folder / f"gpu{k}.py"
    recipe.write_text(RECIPE.format(size=SIZE, batch=BATCH, steps=STEPS, k=k, epochs=EPOCHS, gpus=1 / k))
    monitor = Utilisation()
    monitor.start()
    code = subprocess.call([sys.executable, "-m", "hpsearch.cli", "tune", str(recipe), "--out", str(folder / f"r{k}")],
                           stdout=subprocess.DEVNULL)
    monitor.running = False
    if code != 0:
        raise SystemExit(f"hpsearch tune failed with {code} for {k} trial(s) per GPU")
    history = read_history(folder / f"r{k}")
    steady = history[history["epoch"] > 1]  # the first epoch includes start-up and cuDNN autotuning
    per_trial = STEPS * BATCH / steady.groupby("trial_id")["epoch_seconds"].median()
    busy = [s for s in monitor.samples if s > 0]
    return {"trials_per_gpu": k, "images_per_s": float(per_trial.sum()),
            "gpu_utilisation_pct": float(sum(busy) / len(busy)) if busy else float("nan")}


def main() -> None:
    if not torch.cuda.is_available():
        print("gpu_check skipped: no CUDA GPU on this machine (the CPU paths are covered by the other benchmarks)")
        return
    folder = scratch_folder("hpsearch-gpu-")
    os.environ["HPSEARCH_CACHE"] = str(folder / "cache")
    reference = bare_loop()
    rows = [{"trials_per_gpu": 0, "images_per_s": reference, "gpu_utilisation_pct": float("nan")}]
    rows += [concurrent_trials(k, folder) for k in (1, 2, 4)]
    table = pd.DataFrame(rows)
    table["vs_bare_loop"] = table["images_per_s"] / reference
    table.loc[0, "method"], table.loc[1:, "method"] = "bare loop (bf16, channels-last)", "hpsearch tune"
    notes = [f"{torch.cuda.get_device_name(0)}; resnet18 at {SIZE} px, batch {BATCH}, {STEPS} steps per epoch, "
             f"{EPOCHS} epochs; trials use hpsearch's GPU defaults (mixed precision, channels-last). images_per_s of "
             f"k trials per GPU sums the k trials' median steady epochs.",
             "Target: a few trials per GPU keep it busy; their total throughput approaches or passes the bare loop."]
    write_results("gpu_check", table, notes, quick=False)


if __name__ == "__main__":
    main()
