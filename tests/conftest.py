from __future__ import annotations

import os
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
    from hpsearch.data import ImageArrays, TrialData
    from sklearn.datasets import load_digits

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


MINIMAL_RECIPE = '''
data = dict(source="digits", image_size=8)
budget = dict(num_samples=2, max_epochs=2)

def space(trial):
    trial.suggest_float("lr", 1e-3, 1e-2, log=True)
'''
