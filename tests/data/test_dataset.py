from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from hpsearch.data import DataConfig, TestSplitKey, load_subset, prepare_split, prepare_trial_data
from hpsearch.errors import DataError, RecipeError


def test_digits_trial_data_has_train_and_val_only(tmp_path):
    data = prepare_trial_data(DataConfig(source="digits", image_size=12), seed=0, run_dir=tmp_path)
    assert data.train.images.dtype == np.uint8 and data.train.images.shape[1:] == (1, 12, 12)
    assert len(data.train) + len(data.val) < 1797 and len(data.classes) == 10
    split = (tmp_path / "split.csv").read_text().splitlines()
    assert len(split) == 1798 and split[0] == "id,label,class,subset"


def test_second_prepare_reuses_the_saved_split_and_refuses_another(tmp_path):
    config = DataConfig(source="digits", image_size=8)
    first, _ = prepare_split(config, 0, tmp_path)
    again, _ = prepare_split(config, 0, tmp_path)
    assert first.equals(again)
    with pytest.raises(DataError, match="not the one this dataset and recipe give"):
        prepare_split(config, 99, tmp_path)  # another seed would silently mix two splits
    with pytest.raises(DataError, match="not the one this dataset and recipe give"):
        prepare_split(DataConfig(source="digits", image_size=8, val_fraction=0.3), 0, tmp_path)


def make_folder(root, counts, size=20, corrupt=()):
    rng = np.random.default_rng(0)
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 255, (size, size + 4, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    for rel in corrupt:
        (root / rel).write_bytes(b"not an image at all")
    first = next(iter(counts))
    (root / first / "notes.txt").write_text("ignored: not an image extension")
    return root


def test_folder_source_decodes_and_caches(tmp_path):
    root = make_folder(tmp_path / "imgs", {"a": 12, "b": 12})
    config = DataConfig(source="folder", root=str(root), image_size=10)
    data = prepare_trial_data(config, 0, tmp_path / "run")
    assert data.train.images.shape[1:] == (3, 10, 10) and data.classes == ("a", "b")
    cached = list((config.cache_path / "decoded").glob("*.npy"))
    assert len(cached) == 2  # train and val, never test
    again = prepare_trial_data(config, 0, tmp_path / "run")
    np.testing.assert_array_equal(again.train.images, data.train.images)


def test_corrupt_images_are_skipped_with_one_warning(tmp_path):
    root = make_folder(tmp_path / "imgs", {"a": 10, "b": 10}, corrupt=["a/bad.jpg", "b/bad2.png"])
    config = DataConfig(source="folder", root=str(root), image_size=8)
    split, _ = prepare_split(config, 0, tmp_path / "run")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        subsets = {s: load_subset(config, split, s, key=TestSplitKey("test")) for s in ("train", "val", "test")}
    messages = [str(w.message) for w in caught if "unreadable" in str(w.message)]
    assert sum(int(m.split()[1]) for m in messages) == 2
    assert sum(len(a) for a in subsets.values()) == 20


def test_missing_or_single_class_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        prepare_split(DataConfig(source="folder", root=str(tmp_path / "nope")), 0, tmp_path)
    root = make_folder(tmp_path / "one", {"only": 5})
    with pytest.raises(DataError, match="at least two class subfolders"):
        prepare_split(DataConfig(source="folder", root=str(root)), 0, tmp_path)


def test_folder_source_needs_root():
    with pytest.raises(RecipeError, match="needs data.root"):
        DataConfig(source="folder").validate()


def test_second_run_reads_the_cache_instead_of_decoding(tmp_path, monkeypatch):
    from hpsearch.data.sources import FolderSource

    root = make_folder(tmp_path / "imgs", {"a": 9, "b": 9})
    config = DataConfig(source="folder", root=str(root), image_size=8)
    first = prepare_trial_data(config, 0, tmp_path / "run1")

    def no_decoding(self, ids):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(FolderSource, "decode", no_decoding)
    second = prepare_trial_data(config, 0, tmp_path / "run2")
    np.testing.assert_array_equal(first.val.images, second.val.images)
    changed = DataConfig(source="folder", root=str(root), image_size=10)  # another size is another cache entry
    with pytest.raises(AssertionError, match="decoded again"):
        prepare_trial_data(changed, 0, tmp_path / "run3")


def test_the_test_split_needs_the_key_that_only_evaluate_holds(tmp_path):
    from hpsearch.data.dataset import TestSplitLocked

    config = DataConfig(source="digits", image_size=8)
    split, _ = prepare_split(config, seed=0, run_dir=tmp_path)
    before = TestSplitKey.reads
    with pytest.raises(TestSplitLocked, match="read once, by `hpsearch evaluate`"):
        load_subset(config, split, "test")
    load_subset(config, split, "val")
    assert TestSplitKey.reads == before  # neither the refused read nor other subsets count
    test = load_subset(config, split, "test", key=TestSplitKey("evaluate"))
    assert TestSplitKey.reads == before + 1 and len(test) == (split["subset"] == "test").sum()
