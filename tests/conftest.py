from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own decoded-image cache, never the user's."""
    monkeypatch.setenv("HPSEARCH_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def tiny_data():
    """A small, real TrialData: 600 training and 200 validation digits at 8x8."""
    from sklearn.datasets import load_digits

    from hpsearch.data import ImageArrays, TrialData

    digits = load_digits()
    images = np.round(digits.images * 255 / 16).astype(np.uint8)[:, None]
    labels = digits.target.astype(np.int64)
    train = ImageArrays(images[:600], labels[:600])
    val = ImageArrays(images[600:800], labels[600:800])
    return TrialData(train, val, tuple(str(i) for i in range(10)), (0.0,), (1.0,))


def write_recipe(folder: Path, body: str, name: str = "recipe.py") -> Path:
    path = folder / name
    path.write_text(body)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_tune(recipe: Path, run: Path, log: Path) -> subprocess.Popen:
    """`hpsearch tune RECIPE --out RUN` in its own process group, its output in ``log`` (for kill-and-resume tests)."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "hpsearch.cli", "tune", str(recipe), "--out", str(run)],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


MINIMAL_RECIPE = '''
data = dict(source="digits", image_size=8)
budget = dict(num_samples=2, max_epochs=2)

def space(trial, options):
    trial.suggest_float("lr", 1e-3, 1e-2, log=True)
'''


def make_run(run_dir: Path, trials: int = 3, epochs: int = 1, image_size: int = 8, seed: int = 0,
             root: Path | None = None) -> Path:
    """A finished run directory as `hpsearch tune` leaves it, trained in-process (no Ray): a split of the
    digits (or of the image folder ``root``), `trials` tiny tutorial CNNs with their best epoch saved,
    trials.csv and config.json."""
    import json

    import pandas as pd

    from hpsearch.data import DataConfig, prepare_trial_data
    from hpsearch.rundir import CONFIG_FILE, TRIALS_DIR, TRIALS_FILE, save_model_folder
    from hpsearch.training import Trainer, TrialConfig

    cache = str(run_dir.parent / f"{run_dir.name}-cache")  # its own cache: session fixtures run outside tests
    data_section = {"source": "digits", "image_size": image_size, "cache_dir": cache}
    if root is not None:
        data_section.update(source="folder", root=str(root))
    config = DataConfig(**data_section)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = prepare_trial_data(config, seed, run_dir)
    rows = []
    for n in range(trials):
        trial = TrialConfig(backbone="tutorial_cnn", lr=3e-3 * (n + 1), epochs=epochs, batch_size=32, flip=False,
                            seed=seed + n)
        trainer = Trainer(trial, data)
        best = trainer.fit().best
        trial_id = f"t{n:05d}"
        save_model_folder(run_dir / TRIALS_DIR / trial_id, best, trial, n, trainer.mean, trainer.std,
                          trainer.epoch_choice_probs())
        rows.append({"trial_id": trial_id, "optuna_trial": n, "status": "completed", "lr": trial.lr,
                     "epochs": epochs, "stopped_early": False, "stop_reason": "max_epochs", "best_epoch": best.epoch,
                     "val_acc": best.val_acc, "val_loss": best.val_loss, "train_acc": best.train_acc, "wall_s": 1.0,
                     "node_id": "local", "error": "", "checkpoint": True})
    pd.DataFrame(rows).to_csv(run_dir / TRIALS_FILE, index=False)
    resolved = {"name": "made", "seed": seed, "data": data_section,
                "train": {"backbone": "tutorial_cnn"}}
    (run_dir / CONFIG_FILE).write_text(json.dumps(resolved))
    return run_dir


@pytest.fixture(scope="session")
def made_run(tmp_path_factory):
    """One run directory made without Ray, shared by the tests that only read it (copy it to write)."""
    return make_run(tmp_path_factory.mktemp("made") / "run")
