from __future__ import annotations

import numpy as np
import pytest

from hpsearch.data import Listing, stratified_split
from hpsearch.data.split import load_split, save_split
from hpsearch.errors import DataError


def listing(counts):
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)]).astype(np.int64)
    return Listing(tuple(f"s{i}" for i in range(len(labels))), labels, tuple(f"c{c}" for c in range(len(counts))))


def test_split_is_stratified_and_disjoint():
    data = listing([300, 150, 60])
    split = stratified_split(data, 0.2, 0.1, seed=0)
    assert set(split["subset"]) == {"train", "val", "test"}
    assert split["id"].is_unique and len(split) == 510
    fractions = split.groupby("subset")["label"].value_counts(normalize=True).unstack()
    overall = np.array([300, 150, 60]) / 510
    for subset in ("train", "val", "test"):
        np.testing.assert_allclose(fractions.loc[subset].to_numpy(), overall, atol=0.02)
    sizes = split["subset"].value_counts()
    assert abs(sizes["test"] - 51) <= 1 and abs(sizes["val"] - 102) <= 2


def test_same_seed_same_split_other_seed_other_split():
    data = listing([50, 50, 50])
    a, b = stratified_split(data, 0.2, 0.2, 7), stratified_split(data, 0.2, 0.2, 7)
    assert a.equals(b)
    assert not a["subset"].equals(stratified_split(data, 0.2, 0.2, 8)["subset"])


def test_split_round_trips_through_csv(tmp_path):
    split = stratified_split(listing([20, 20]), 0.2, 0.2, 0)
    save_split(split, tmp_path / "split.csv")
    back = load_split(tmp_path / "split.csv")
    assert back[["id", "label", "subset"]].equals(split[["id", "label", "subset"]])


def test_too_few_images_in_a_class_is_a_clear_error():
    with pytest.raises(DataError, match=r"too few images.*'c1': 2.*at least 3"):
        stratified_split(listing([40, 2]), 0.2, 0.2, 0)
