"""Stratified, seeded train/validation/test split, saved as ``split.csv`` in the run directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from hpsearch.data.sources import Listing
from hpsearch.errors import DataError
from hpsearch.io import atomic_write

SUBSETS = ("train", "val", "test")
SPLIT_FILE = "split.csv"  # its name in the run directory (re-exported by hpsearch.rundir)
MIN_PER_CLASS = 3  # one image each for train, val and test


def stratified_split(listing: Listing, val_fraction: float, test_fraction: float, seed: int) -> pd.DataFrame:
    """Assign each sample to train, val or test, stratified by label; same seed, same split."""
    labels = listing.labels
    counts = np.bincount(labels, minlength=len(listing.classes))
    too_few = {listing.classes[c]: int(n) for c, n in enumerate(counts) if n < MIN_PER_CLASS}
    if too_few:
        raise DataError(
            f"Classes with too few images for a stratified train/val/test split: {too_few}; "
            f"each class needs at least {MIN_PER_CLASS}. Add images or remove those class folders."
        )
    index = np.arange(len(labels))
    try:
        rest, test = train_test_split(index, test_size=test_fraction, stratify=labels, random_state=seed)
        val_size = val_fraction / (1.0 - test_fraction)
        train, val = train_test_split(rest, test_size=val_size, stratify=labels[rest], random_state=seed)
    except ValueError as err:
        raise DataError(f"Cannot split the dataset stratified by class: {err}. "
                        f"Use larger val/test fractions or more images per class.") from None
    subset = np.empty(len(labels), dtype=object)
    subset[train], subset[val], subset[test] = "train", "val", "test"
    return pd.DataFrame({"id": list(listing.ids), "label": labels,
                         "class": [listing.classes[i] for i in labels], "subset": subset})


def save_split(split: pd.DataFrame, path: Path) -> None:
    atomic_write(path, split.to_csv(index=False))


SPLIT_COLUMNS = ["id", "label", "class", "subset"]


def load_split(path: Path) -> pd.DataFrame:
    """Read ``split.csv`` exactly as written: every class name is text (``NA``, ``None`` and ``1e5`` included)."""
    if not path.is_file():
        raise DataError(f"No split file at {str(path)!r}; is this an hpsearch run directory?")
    try:
        split = pd.read_csv(path, dtype={"id": str, "label": np.int64, "class": str, "subset": str},
                            keep_default_na=False, na_values=[])
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{str(path)!r} is damaged ({str(err).splitlines()[0]}); restore it from a backup, or start "
                        f"a new run directory.") from None
    if list(split.columns) != SPLIT_COLUMNS or not split["subset"].isin(SUBSETS).all():
        raise DataError(f"{str(path)!r} is damaged (expected columns {SPLIT_COLUMNS} and subsets {list(SUBSETS)}); "
                        f"restore it from a backup, or start a new run directory.")
    return split


def subset_rows(split: pd.DataFrame, subset: str) -> pd.DataFrame:
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, but got {subset=!r}")
    return split[split["subset"] == subset].reset_index(drop=True)
