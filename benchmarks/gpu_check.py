"""A short end-to-end check of the GPU path, for a machine with a CUDA GPU (a few minutes).

1. One trial on the GPU with bf16 autocast and channels-last, timed against fp32.
2. `hpsearch tune` with --gpus-per-trial 0.5: two trials share the GPU (checked in trials.csv).

    python -m benchmarks.gpu_check
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import torch

from benchmarks.common import scratch_folder

RECIPE = '''
name = "gpu"
seed = 0
data = dict(source="digits", image_size=32)
train = dict(backbone="resnet18", batch_size=128, flip=False, amp=True, channels_last=True)
budget = dict(num_samples=4, max_epochs=3, grace_period=3, cpus_per_trial=1, gpus_per_trial=0.5)

def space(trial, options):
    trial.suggest_float("lr", 1e-3, 1e-2, log=True)
'''


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this check is for a GPU machine")
    from hpsearch.data import DataConfig, prepare_trial_data
    from hpsearch.training import Trainer, TrialConfig

    folder = scratch_folder("hpsearch-gpu-")
    os.environ["HPSEARCH_CACHE"] = str(folder / "cache")
    data = prepare_trial_data(DataConfig(source="digits", image_size=64), 0, folder / "data")
    for amp, channels_last in ((False, False), (True, True)):
        config = TrialConfig(backbone="resnet18", batch_size=128, epochs=2, amp=amp, channels_last=channels_last)
        trainer = Trainer(config, data, device="cuda")
        trainer.train_epoch()
        torch.cuda.synchronize()
        start = time.perf_counter()
        outcome = trainer.fit()
        torch.cuda.synchronize()
        print(f"amp={amp} channels_last={channels_last}: {time.perf_counter() - start:.2f} s for 2 epochs, "
              f"val_acc {outcome.best.val_acc:.4f}, device {next(trainer.model.parameters()).device}", flush=True)
    recipe = folder / "gpu.py"
    recipe.write_text(RECIPE)
    code = subprocess.call([sys.executable, "-m", "hpsearch.cli", "tune", str(recipe), "--out", str(folder / "run")])
    print(open(folder / "run" / "trials.csv").read() if code == 0 else f"hpsearch tune failed with {code}")
    sys.exit(code)


if __name__ == "__main__":
    main()
