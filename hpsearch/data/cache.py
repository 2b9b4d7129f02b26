"""The decoded-image cache: each subset decoded once into an uncompressed ``.npy`` that every trial memory-maps.

A cache entry is ``<key>.npy`` (uint8, N x C x H x W, only the readable images) and ``<key>.json`` (the ids it
holds, in order, and the ids that could not be read). The key is the content fingerprint of the files, the
stored size and the colour mode, so a shared cache folder serves every node once. Decoding runs on a pool of
threads over the node's CPUs, writes into ``.<key>.partial.npy`` and records finished chunks, so an interrupted
build resumes; only a finished entry is renamed into place, and an entry whose files disagree is rebuilt.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpsearch.data.sources import CorruptImages, Source
from hpsearch.errors import DataError
from hpsearch.io import atomic_write

log = logging.getLogger(__name__)
CACHE_FORMAT = 3  # 3: 16-bit images scaled to 8 bits (2 clipped them at 255)
CHUNK = 256  # images decoded per task, and per progress record


@dataclass(frozen=True)
class CacheEntry:
    """The files of one cached subset."""

    folder: Path
    key: str

    @property
    def images(self) -> Path:
        return self.folder / f"{self.key}.npy"

    @property
    def index(self) -> Path:
        return self.folder / f"{self.key}.json"

    @property
    def partial(self) -> Path:
        return self.folder / f".{self.key}.partial.npy"

    @property
    def progress(self) -> Path:
        return self.folder / f".{self.key}.progress"

    @property
    def lock(self) -> Path:
        return self.folder / f".{self.key}.lock"


def entry_for(source: Source, ids: list[str]) -> CacheEntry:
    cfg = source.config
    key = f"{source.fingerprint(ids)}_{cfg.stored_size}px_{'L' if cfg.grayscale else 'C'}"
    return CacheEntry(cfg.cache_path / "decoded", key)


def open_entry(entry: CacheEntry) -> tuple[np.ndarray, list[str], list[str]] | None:
    """The memory-mapped images, the ids they hold and the unreadable ids; None when absent or inconsistent."""
    if not (entry.images.is_file() and entry.index.is_file()):
        return None
    try:
        index = json.loads(entry.index.read_text())
        if isinstance(index, dict) and isinstance(index.get("format"), int) and index["format"] < CACHE_FORMAT:
            log.info("The decoded-image cache %s was written by an earlier hpsearch (format %d); decoding the images "
                     "again.", entry.images, index["format"])
            return drop_entry(entry)
        images = np.load(entry.images, mmap_mode="r")
        if index.get("format") != CACHE_FORMAT or images.shape[0] != len(index["kept"]) or images.dtype != np.uint8:
            raise ValueError("the images and their index disagree")
        return images, list(index["kept"]), list(index["unreadable"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        warnings.warn(f"The decoded-image cache {entry.images} is damaged ({type(err).__name__}: {err}); decoding "
                      f"the images again.", stacklevel=3)
        return drop_entry(entry)


def drop_entry(entry: CacheEntry) -> None:
    """Remove a cache entry that must be decoded again."""
    entry.images.unlink(missing_ok=True)
    entry.index.unlink(missing_ok=True)


@contextlib.contextmanager
def locked(entry: CacheEntry) -> Iterator[None]:
    """One builder per entry at a time, across processes (trials of one node start together)."""
    entry.folder.mkdir(parents=True, exist_ok=True)
    with open(entry.lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached_images(source: Source, ids: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
    """``ids`` decoded at the stored size, memory-mapped from the cache (built first if needed)."""
    entry = entry_for(source, ids)
    found = open_entry(entry)
    if found is not None:
        return found
    try:
        with locked(entry):
            found = open_entry(entry)  # another process may have built it while we waited
            if found is None:
                build(entry, source, ids)
                found = open_entry(entry)
    except OSError as err:  # a read-only or full cache folder
        return without_cache(entry, source, ids, err)
    if found is None:
        raise OSError(f"the decoded-image cache {entry.images} could not be read back")
    return found


MEMORY_FALLBACK_FRACTION = 0.25  # decode into memory instead only when the images take less of the RAM than this


def without_cache(entry: CacheEntry, source: Source, ids: list[str],
                  err: OSError) -> tuple[np.ndarray, list[str], list[str]]:
    """A cache that cannot be written: small datasets are decoded into memory (with a warning), large ones are
    a one-line error. A partial build is removed (it would only take the space a full disk lacks)."""
    for leftover in (entry.partial, entry.progress):
        with contextlib.suppress(OSError):
            leftover.unlink(missing_ok=True)
    size = len(ids) * int(np.prod(source.sample_shape()))
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if size > MEMORY_FALLBACK_FRACTION * memory:
        need = f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"
        raise DataError(f"Cannot write the decoded-image cache in {entry.folder} ({err.strerror or err}), and the "
                        f"images ({need}) are too many to decode into memory. Set data.cache_dir (or "
                        f"$HPSEARCH_CACHE) to a writable folder with {need} free.") from None
    log.warning("Cannot write the decoded-image cache in %s (%s); decoding into memory instead.", entry.folder,
                err.strerror or err)
    return decode_in_memory(source, ids)


def decode_in_memory(source: Source, ids: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
    try:
        return source.decode(ids), list(ids), []
    except CorruptImages as bad:
        unreadable = set(bad.ids)
        keep = [i for i, sample in enumerate(ids) if sample not in unreadable]
        return bad.partial[keep], [ids[i] for i in keep], list(bad.ids)


def build(entry: CacheEntry, source: Source, ids: list[str]) -> None:
    """Decode ``ids`` into the entry in chunks over the node's CPUs; resumes a build that was interrupted."""
    shape = (len(ids), *source.sample_shape())
    done = resume_progress(entry, shape)
    unreadable = [i for bad in done.values() for i in bad] + decode_into(entry, source, ids, shape, set(done))
    finish(entry, ids, set(unreadable), shape)


def decode_into(entry: CacheEntry, source: Source, ids: list[str], shape: tuple[int, ...], done: set[int]) -> list[str]:
    """Fill the partial file's missing chunks, recording each as it finishes; return the unreadable ids."""
    from tqdm.auto import tqdm

    out = np.lib.format.open_memmap(entry.partial, mode="r+" if done else "w+", dtype=np.uint8, shape=shape)
    todo = [range(start, min(start + CHUNK, len(ids))) for start in range(0, len(ids), CHUNK) if start not in done]
    unreadable: list[str] = []
    workers = max(1, min(os.cpu_count() or 1, len(todo)))
    with ThreadPoolExecutor(workers) as pool, tqdm(total=len(ids), initial=len(ids) - sum(map(len, todo)),
                                                     unit="img", desc="Decoding images", leave=False) as bar:
        for chunk, bad in zip(todo, pool.map(lambda c: decode_chunk(source, ids, c, out), todo), strict=True):
            unreadable += bad
            with open(entry.progress, "a") as record:
                record.write(json.dumps({"start": chunk.start, "unreadable": bad}) + "\n")
            bar.update(len(chunk))
    out.flush()
    return unreadable


def decode_chunk(source: Source, ids: list[str], chunk: range, out: np.ndarray) -> list[str]:
    """Decode one chunk into its rows of ``out``; return the ids that could not be read."""
    part = [ids[i] for i in chunk]
    try:
        out[chunk.start:chunk.stop] = source.decode(part)
        return []
    except CorruptImages as bad:
        out[chunk.start:chunk.stop] = bad.partial
        return list(bad.ids)


def resume_progress(entry: CacheEntry, shape: tuple[int, ...]) -> dict[int, list[str]]:
    """Chunks an interrupted build finished (start -> unreadable ids), if its partial file fits ``shape``."""
    if not (entry.partial.is_file() and entry.progress.is_file()):
        entry.progress.unlink(missing_ok=True)
        return {}
    try:
        if np.load(entry.partial, mmap_mode="r").shape != shape:
            raise ValueError("another shape")
        lines = [json.loads(line) for line in entry.progress.read_text().splitlines() if line.strip()]
        return {int(line["start"]): list(line["unreadable"]) for line in lines}
    except (OSError, ValueError, KeyError, TypeError):
        entry.partial.unlink(missing_ok=True)
        entry.progress.unlink(missing_ok=True)
        return {}


def finish(entry: CacheEntry, ids: list[str], unreadable: set[str], shape: tuple[int, ...]) -> None:
    """Move the finished build into place (without the unreadable images) and write its index."""
    kept = [i for i in ids if i not in unreadable]
    if unreadable:  # compact: copy the readable rows into the final file, a chunk at a time
        source = np.load(entry.partial, mmap_mode="r")
        rows = np.flatnonzero([i not in unreadable for i in ids])
        final = np.lib.format.open_memmap(entry.partial.with_suffix(".compact.npy"), mode="w+", dtype=np.uint8,
                                          shape=(len(rows), *shape[1:]))
        for start in range(0, len(rows), CHUNK):
            final[start:start + CHUNK] = source[rows[start:start + CHUNK]]
        final.flush()
        del final, source
        os.replace(entry.partial.with_suffix(".compact.npy"), entry.partial)
    with open(entry.partial, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(entry.partial, entry.images)
    atomic_write(entry.index, json.dumps({"format": CACHE_FORMAT, "kept": kept, "unreadable": sorted(unreadable)}))
    entry.progress.unlink(missing_ok=True)
