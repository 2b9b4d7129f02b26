"""Decoded, cached image arrays for the subsets of a split, ready to hand to trials."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hpsearch.data.cache import cached_images
from hpsearch.data.config import DataConfig
from hpsearch.data.sources import make_source, warn_corrupt
from hpsearch.data.split import SPLIT_FILE, load_split, save_split, stratified_split, subset_rows
from hpsearch.errors import DataError


@dataclass(frozen=True)
class CacheRef:
    """Where a subset's images live in the decoded-image cache: enough to map them (or build them) anywhere."""

    config: DataConfig
    ids: tuple[str, ...]
    kept: tuple[str, ...]


@dataclass(frozen=True)
class ImageArrays:
    """uint8 images (N, C, H, W) and int64 labels.

    Images memory-mapped from the decoded-image cache pickle as a ``CacheRef``: Ray's object store carries the
    reference, and each trial maps the same file, whose pages the OS shares between the trials of a node.
    """

    images: np.ndarray
    labels: np.ndarray
    cache: CacheRef | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __reduce__(self):
        if self.cache is None:
            return ImageArrays, (self.images, self.labels)
        return reopen, (self.cache, self.labels)


def reopen(ref: CacheRef, labels: np.ndarray) -> ImageArrays:
    """The arrays a ``CacheRef`` names, mapped on this node (and decoded into its cache first if needed)."""
    images, kept, _ = cached_images(make_source(ref.config), list(ref.ids))
    if tuple(kept) != ref.kept:
        raise DataError(f"The images on this node differ from the driver's ({len(kept)} readable here, "
                        f"{len(ref.kept)} there); give every node the same dataset.")
    return ImageArrays(images, labels, ref)


@dataclass(frozen=True)
class TrialData:
    """Everything a trial needs: train and validation arrays, class names and normalization."""

    train: ImageArrays
    val: ImageArrays
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    normalize: str = "unit"
    crop: int | None = None  # the side models see when images are stored larger (data.crop_ratio > 1)

    @property
    def in_chans(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> int:
        """The side of the images a model sees (the crop's, when images are stored larger)."""
        return self.crop or int(self.train.images.shape[-1])


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
    images, kept, unreadable = cached_images(make_source(config), ids)
    if unreadable:
        warn_corrupt(unreadable)
    labels = rows.set_index("id").loc[kept, "label"].to_numpy(dtype=np.int64)
    ref = CacheRef(config, tuple(ids), tuple(kept)) if isinstance(images, np.memmap) else None
    return ImageArrays(images, labels, ref)


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
                     classes, mean, std, config.normalize, config.crop)
