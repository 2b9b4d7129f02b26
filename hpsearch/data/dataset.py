"""Decoded, cached image arrays for the subsets of a split, ready to hand to trials."""

from __future__ import annotations

import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hpsearch.data.config import DataConfig
from hpsearch.data.sources import CorruptImages, Source, make_source, warn_corrupt
from hpsearch.data.split import SPLIT_FILE, load_split, save_split, stratified_split, subset_rows
from hpsearch.errors import DataError
from hpsearch.io import atomic_save


@dataclass(frozen=True)
class ImageArrays:
    """uint8 images (N, C, H, W) and int64 labels; what Ray puts in its object store, zero-copy."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class TrialData:
    """Everything a trial needs: train and validation arrays, class names and normalization."""

    train: ImageArrays
    val: ImageArrays
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    normalize: str = "unit"

    @property
    def in_chans(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train.images.shape[-1])


def decode_cached(source: Source, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``ids`` once and keep them on disk; return the images and a mask of readable ones."""
    cfg = source.config
    key = f"{source.fingerprint(ids)}_{cfg.image_size}px_{'L' if cfg.grayscale else 'C'}"
    folder = cfg.cache_path / "decoded"
    path = folder / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path) as cached:
                return cached["images"], cached["ok"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            warnings.warn(f"The decoded-image cache {path} is damaged ({type(err).__name__}); decoding the images "
                          f"again.", stacklevel=2)
            path.unlink(missing_ok=True)
    try:
        images, ok = source.decode(ids), np.ones(len(ids), dtype=bool)
    except CorruptImages as bad:
        images, ok = bad.partial, ~np.isin(np.asarray(ids, dtype=object), bad.ids)
    try:
        atomic_save(path, lambda f: np.savez(f, images=images, ok=ok))
    except OSError:
        pass  # an unwritable cache only costs speed
    return images, ok


class TestSplitLocked(RuntimeError):
    """A stage other than ``evaluate`` asked for the test split."""


class TestSplitKey:
    """The capability to decode the test split. ``hpsearch evaluate`` makes one per evaluation; nothing else
    should: selection, weights, stacking and every other choice are made without the test images."""

    __test__ = False  # not a pytest test class
    reads = 0  # test-split decodes in this process, counted by the guard (what the tests assert on)

    def __init__(self, purpose: str):
        self.purpose = purpose


def load_subset(config: DataConfig, split: pd.DataFrame, subset: str, key: TestSplitKey | None = None) -> ImageArrays:
    """Decode (or read from cache) one subset of the split; unreadable images are dropped with a warning.

    The test subset needs a ``TestSplitKey``: without one this raises, so no stage reads it by accident.
    """
    if subset == "test":
        if not isinstance(key, TestSplitKey):
            raise TestSplitLocked("The test split is read once, by `hpsearch evaluate`; this stage must use the "
                                  "training and validation splits only.")
        TestSplitKey.reads += 1
    rows = subset_rows(split, subset)
    ids = rows["id"].tolist()
    images, ok = decode_cached(make_source(config), ids)
    if not ok.all():
        warn_corrupt([i for i, good in zip(ids, ok, strict=True) if not good])
    labels = rows["label"].to_numpy(dtype=np.int64)
    return ImageArrays(np.ascontiguousarray(images[ok]), labels[ok])


def prepare_split(config: DataConfig, seed: int, run_dir: Path,
                  save: bool = True) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The run's stratified split (saved in ``run_dir`` unless ``save`` is False) and the class names.

    A split already saved there must be the one this dataset, seed and fractions give: a changed dataset
    or a different seed is an error, never a silent mix of two splits.
    """
    listing = make_source(config).list()
    split = stratified_split(listing, config.val_fraction, config.test_fraction, seed)
    path = run_dir / SPLIT_FILE
    if path.is_file():
        saved = load_split(path)
        if not saved.set_index("id")["subset"].sort_index().equals(split.set_index("id")["subset"].sort_index()):
            raise DataError(f"The split saved in {str(path)!r} is not the one this dataset and recipe give (images "
                            f"were added or removed, or the seed or val/test fractions changed). Start a new run "
                            f"directory (--out).")
        return saved, listing.classes
    if save:
        save_split(split, path)
    return split, listing.classes


def prepare_trial_data(config: DataConfig, seed: int, run_dir: Path, save: bool = True) -> TrialData:
    """Split the dataset and decode the train and validation subsets (never the test subset)."""
    split, classes = prepare_split(config, seed, run_dir, save)
    mean, std = config.mean_std
    return TrialData(load_subset(config, split, "train"), load_subset(config, split, "val"),
                     classes, mean, std, config.normalize)
