"""The memory-mapped decoded-image cache: built once, resumable, never trusted half-written, shared by reference."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from hpsearch.data import DataConfig, make_source, prepare_split
from hpsearch.data.cache import cached_images, entry_for
from hpsearch.data.dataset import load_subset


def folder(root, per_class=40, size=12):
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.fixture
def source(tmp_path):
    return make_source(DataConfig(source="folder", root=str(folder(tmp_path / "img")), image_size=8,
                                  cache_dir=str(tmp_path / "cache")))


def test_images_are_memory_mapped_from_one_uncompressed_npy(source):
    ids = list(source.list().ids)
    images, kept, unreadable = cached_images(source, ids)
    assert isinstance(images, np.memmap) and images.shape == (120, 3, 8, 8) and not images.flags.writeable
    assert kept == ids and unreadable == []
    entry = entry_for(source, ids)
    assert entry.images.is_file() and json.loads(entry.index.read_text())["kept"] == ids
    np.testing.assert_array_equal(images, source.decode(ids))


def test_an_interrupted_build_resumes_and_a_half_written_cache_is_never_used(source, monkeypatch):
    import hpsearch.data.cache as cache

    ids = list(source.list().ids)  # 120 images in 4 chunks of 30
    monkeypatch.setattr(cache, "CHUNK", 30)
    calls = []
    original = source.decode

    def interrupt_after_three(part):
        calls.append(len(part))
        if len(calls) == 4:
            raise KeyboardInterrupt
        return original(part)

    monkeypatch.setattr(source, "decode", interrupt_after_three)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)  # one worker: chunks in order
    with pytest.raises(KeyboardInterrupt):
        cached_images(source, ids)
    entry = entry_for(source, ids)
    assert not entry.images.exists() and entry.partial.exists()  # nothing half-written is in place
    calls.clear()
    monkeypatch.setattr(source, "decode", lambda part: calls.append(len(part)) or original(part))
    images, kept, _ = cached_images(source, ids)
    assert sum(calls) == len(ids) - 3 * 30  # only the chunk the first build had not finished
    np.testing.assert_array_equal(images, original(ids))
    assert kept == ids and not entry.partial.exists() and not entry.progress.exists()


def test_unreadable_images_are_left_out_of_the_file(source, tmp_path):
    (tmp_path / "img" / "b" / "broken.png").write_bytes(b"not an image")
    source = make_source(source.config)
    ids = list(source.list().ids)
    images, kept, unreadable = cached_images(source, ids)
    assert unreadable == ["b/broken.png"] and kept == [i for i in ids if i != "b/broken.png"]
    assert isinstance(images, np.memmap) and images.shape[0] == len(kept) == 120
    np.testing.assert_array_equal(images, source.decode(kept))


def test_arrays_from_the_cache_pickle_as_a_reference_not_as_pixels(source, tmp_path):
    split, _ = prepare_split(source.config, 0, tmp_path / "run")
    train = load_subset(source.config, split, "train")
    blob = pickle.dumps(train)
    assert len(blob) < train.images.nbytes / 5  # the path and the ids, not the images
    again = pickle.loads(blob)
    assert isinstance(again.images, np.memmap) and np.array_equal(again.images, train.images)
    assert np.array_equal(again.labels, train.labels)


@pytest.mark.parametrize("errno_", [30, 28])  # read-only file system, no space left
def test_an_unwritable_cache_folder_decodes_into_memory_with_a_warning(source, monkeypatch, caplog, errno_):
    import hpsearch.data.cache as cache

    def refuse(entry):
        raise OSError(errno_, os.strerror(errno_))

    monkeypatch.setattr(cache, "locked", refuse)
    images, kept, _ = cached_images(source, list(source.list().ids))
    assert not isinstance(images, np.memmap) and len(kept) == 120
    assert "Cannot write the decoded-image cache" in caplog.text
    assert not entry_for(source, kept).images.exists()


def test_a_full_cache_folder_for_a_dataset_too_big_for_memory_is_one_clear_error(source, monkeypatch):
    import hpsearch.data.cache as cache
    from hpsearch.errors import DataError

    def full(entry):
        entry.folder.mkdir(parents=True, exist_ok=True)
        entry.partial.write_bytes(b"partial")  # what a build cut short by a full disk leaves
        raise OSError(28, os.strerror(28))

    monkeypatch.setattr(cache, "locked", full)
    monkeypatch.setattr(cache, "MEMORY_FALLBACK_FRACTION", 1e-12)  # as if the images were larger than the RAM
    ids = list(source.list().ids)
    with pytest.raises(DataError, match="No space left on device.*Set data.cache_dir .* free"):
        cached_images(source, ids)
    assert not entry_for(source, ids).partial.exists()  # no half-written cache survives


def test_an_array_dataset_is_split_cached_and_mapped(tmp_path):
    from hpsearch.data import prepare_trial_data
    from hpsearch.errors import DataError

    root = tmp_path / "arrays"
    root.mkdir()
    rng = np.random.default_rng(0)
    np.save(root / "images.npy", rng.integers(0, 255, (90, 3, 12, 12), dtype=np.uint8))
    np.save(root / "labels.npy", np.repeat([0, 1, 2], 30))
    (root / "classes.txt").write_text("cat\ndog\nfox\n")
    config = DataConfig(source="arrays", root=str(root), image_size=12, cache_dir=str(tmp_path / "cache"))
    data = prepare_trial_data(config, 0, tmp_path / "run")
    assert data.classes == ("cat", "dog", "fox") and isinstance(data.train.images, np.memmap)
    assert len(data.train) + len(data.val) < 90 and data.train.images.shape[1:] == (3, 12, 12)
    with pytest.raises(DataError, match="expects 1; set data.grayscale"):
        prepare_trial_data(DataConfig(source="arrays", root=str(root), image_size=12, grayscale=True,
                                      cache_dir=str(tmp_path / "cache")), 0, tmp_path / "run2")


def test_an_entry_of_an_earlier_format_is_decoded_again_without_a_damage_warning(source, caplog):
    import logging
    import warnings

    from hpsearch.data.cache import CACHE_FORMAT

    ids = list(source.list().ids)
    first, _, _ = cached_images(source, ids)
    first = np.array(first)
    entry = entry_for(source, ids)
    index = json.loads(entry.index.read_text())
    entry.index.write_text(json.dumps({**index, "format": CACHE_FORMAT - 1}))  # decoded by an earlier rule
    np.save(entry.images, np.zeros_like(first))
    with warnings.catch_warnings(), caplog.at_level(logging.INFO, logger="hpsearch.data.cache"):
        warnings.simplefilter("error")  # no "damaged" warning
        again, _, _ = cached_images(source, ids)
    np.testing.assert_array_equal(again, first)  # decoded again, not the old entry's pixels
    assert "earlier hpsearch (format" in caplog.text and json.loads(entry.index.read_text())["format"] == CACHE_FORMAT
