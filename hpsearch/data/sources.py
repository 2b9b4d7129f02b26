"""Dataset sources: list samples with labels, then decode any subset of them to uint8 arrays."""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hpsearch.data.arrays import to_pixel_mode
from hpsearch.data.config import DataConfig
from hpsearch.data.download import listed
from hpsearch.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def is_image_file(path: Path) -> bool:
    """A file a folder dataset or ``predict FOLDER`` takes: an image extension, and ``listed``."""
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and listed(path)


@dataclass(frozen=True)
class Listing:
    """Every sample of a dataset: stable ids, integer labels and class names."""

    ids: tuple[str, ...]
    labels: np.ndarray
    classes: tuple[str, ...]


class Source:
    """A dataset: ``list()`` is cheap (no decoding), ``decode(ids)`` returns uint8 (N, C, H, W)."""

    def __init__(self, config: DataConfig):
        self.config = config

    def list(self) -> Listing:
        raise NotImplementedError

    def decode(self, ids: list[str]) -> np.ndarray:
        raise NotImplementedError

    def fingerprint(self, ids: list[str]) -> str:
        """A key that changes when the decoded pixels of ``ids`` could change."""
        raise NotImplementedError

    def sample_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one decoded image, at the size images are stored in the cache."""
        size = self.config.stored_size
        return self.config.in_chans, size, size


def resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 (N, C, H, W) images to (size, size), bilinear with antialiasing."""
    if images.shape[-2:] == (size, size):
        return images
    out = F.interpolate(torch.from_numpy(images).float(), size=(size, size), mode="bilinear",
                        antialias=True, align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8).numpy()


class DigitsSource(Source):
    """scikit-learn's bundled handwritten digits: 1,797 8x8 grey images, 10 classes."""

    def _raw(self):
        from sklearn.datasets import load_digits

        return load_digits()

    def list(self) -> Listing:
        raw = self._raw()
        ids = tuple(f"digits/{i:04d}" for i in range(len(raw.target)))
        return Listing(ids, raw.target.astype(np.int64), tuple(str(c) for c in raw.target_names))

    def decode(self, ids: list[str]) -> np.ndarray:
        index = np.array([int(i.split("/")[1]) for i in ids], dtype=np.int64)
        images = self._raw().images[index]  # values 0..16
        pixels = np.round(images * (255.0 / 16.0)).astype(np.uint8)[:, None]
        return resize_uint8(pixels, self.config.stored_size)

    def fingerprint(self, ids: list[str]) -> str:
        return _hash(["digits", *ids])


class FolderSource(Source):
    """Any folder laid out as ``root/<class>/<image>``; corrupt files are skipped with one warning."""

    _root: Path | None = None

    @property
    def root(self) -> Path:
        """``data.root``, else the extracted archive from ``data.url`` (fetched on first use)."""
        if self._root is None:
            if self.config.root:
                self._root = Path(self.config.root).expanduser()
            else:
                from hpsearch.data.download import fetch_dataset

                self._root = fetch_dataset(self.config.url, self.config.cache_path, self.config.sha256)
        return self._root

    def list(self) -> Listing:
        listing = self._list()
        self._verify(listing)
        return listing

    def _verify(self, listing: Listing) -> None:
        expected = self.config.classes
        if expected and set(expected) != set(listing.classes):
            raise DataError(f"Dataset at {str(self.root)!r} has classes {list(listing.classes)}, but the recipe "
                            f"expects {list(expected)}; check data.root/data.url or data.classes.")
        if len(listing.ids) < self.config.min_images:
            raise DataError(f"Dataset at {str(self.root)!r} has {len(listing.ids)} images, fewer than data.min_images="
                            f"{self.config.min_images}; the archive or folder is incomplete.")

    def _list(self) -> Listing:
        root = self.root
        if not root.is_dir():
            raise DataError(f"Dataset folder {str(root)!r} does not exist; fix data.root "
                            f"(--set data.root=/path/with/class/subfolders).")
        classes = sorted(p.name for p in root.iterdir() if p.is_dir() and listed(p))
        ids, labels = [], []
        for label, name in enumerate(classes):
            files = sorted(f for f in (root / name).iterdir() if is_image_file(f))
            ids += [f"{name}/{f.name}" for f in files]
            labels += [label] * len(files)
        counts = {c: labels.count(i) for i, c in enumerate(classes)}
        classes = [c for c in classes if counts[c] > 0]
        if len(classes) < 2:
            raise DataError(f"Dataset folder {str(root)!r} needs at least two class subfolders with images "
                            f"({', '.join(IMAGE_EXTENSIONS)}), but found {counts or 'none'}.")
        keep = {c: i for i, c in enumerate(classes)}
        labels = [keep[i.split("/")[0]] for i in ids]
        return Listing(tuple(ids), np.asarray(labels, dtype=np.int64), tuple(classes))

    def decode(self, ids: list[str]) -> np.ndarray:
        return decode_images([self.root / i for i in ids], ids, self.config)

    def fingerprint(self, ids: list[str]) -> str:
        stats = []
        for sample_id in ids:
            st = os.stat(self.root / sample_id)
            stats.append(f"{sample_id}:{st.st_size}:{st.st_mtime_ns}")
        return _hash([str(self.root.resolve()), *stats])


class ArraySource(Source):
    """Images already decoded: ``root/images.npy`` (uint8, N x C x H x W), ``root/labels.npy`` (N integers) and
    ``root/classes.txt`` (one name per line). Rows are read from a memory map, resized if needed."""

    @property
    def root(self) -> Path:
        return Path(self.config.root or "").expanduser()

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        try:
            images = np.load(self.root / "images.npy", mmap_mode="r")
            labels = np.load(self.root / "labels.npy")
        except (OSError, ValueError) as err:
            raise DataError(f"data.source='arrays' reads images.npy and labels.npy in data.root={str(self.root)!r}: "
                            f"{err}.") from None
        if images.ndim != 4 or images.dtype != np.uint8 or len(labels) != len(images):
            raise DataError(f"{self.root / 'images.npy'} must be uint8 (N, C, H, W) with one label each in "
                            f"labels.npy, but got {images.dtype} {images.shape} and {len(labels)} labels.")
        if images.shape[1] != self.config.in_chans:
            raise DataError(f"{self.root / 'images.npy'} has {images.shape[1]} channel(s) but data.grayscale="
                            f"{self.config.grayscale} expects {self.config.in_chans}; set data.grayscale accordingly.")
        return images, labels

    def list(self) -> Listing:
        _, labels = self.arrays()
        classes = (self.root / "classes.txt").read_text().split("\n") if (self.root / "classes.txt").is_file() else []
        classes = [c for c in classes if c] or [str(c) for c in range(int(labels.max()) + 1)]
        return Listing(tuple(f"{i:09d}" for i in range(len(labels))), labels.astype(np.int64), tuple(classes))

    def decode(self, ids: list[str]) -> np.ndarray:
        images, _ = self.arrays()
        rows = images[np.array([int(i) for i in ids], dtype=np.int64)]
        return resize_uint8(np.ascontiguousarray(rows), self.config.stored_size)

    def fingerprint(self, ids: list[str]) -> str:
        st = os.stat(self.root / "images.npy")
        return _hash([str(self.root.resolve()), f"{st.st_size}:{st.st_mtime_ns}", *ids])

    def sample_shape(self) -> tuple[int, int, int]:
        images, _ = self.arrays()
        return int(images.shape[1]), self.config.stored_size, self.config.stored_size


class FileListSource(Source):
    """Image files named one by one (what ``predict`` classifies), decoded exactly like the run's images.

    Its ids are the files' absolute paths; it has no labels and no classes.
    """

    def __init__(self, config: DataConfig, files: list[Path]):
        super().__init__(config)
        self.files = [Path(f).resolve() for f in files]

    def list(self) -> Listing:
        ids = tuple(str(f) for f in self.files)
        return Listing(ids, np.zeros(len(ids), dtype=np.int64), ())

    def decode(self, ids: list[str]) -> np.ndarray:
        return decode_images([Path(i) for i in ids], ids, self.config)

    def fingerprint(self, ids: list[str]) -> str:
        return _hash([f"{i}:{os.stat(i).st_size}:{os.stat(i).st_mtime_ns}" for i in ids])


def decode_images(paths: list[Path], ids: list[str], config: DataConfig) -> np.ndarray:
    """Decode ``paths`` to uint8 (N, C, size, size); unreadable ones raise CorruptImages with the rest decoded.

    Images with more than ``config.max_image_pixels`` pixels (decompression bombs) count as unreadable.
    """
    from PIL import Image

    size, mode = config.stored_size, "L" if config.grayscale else "RGB"
    out = np.zeros((len(ids), 1 if mode == "L" else 3, size, size), dtype=np.uint8)
    bad = []
    for n, (path, sample_id) in enumerate(zip(paths, ids, strict=True)):
        try:
            with Image.open(path) as image:
                if image.size[0] * image.size[1] > config.max_image_pixels:
                    raise ValueError(f"{image.size[0]}x{image.size[1]} pixels exceed data.max_image_pixels")
                image = to_pixel_mode(image, mode).resize((size, size), Image.Resampling.BILINEAR)
                array = np.asarray(image, dtype=np.uint8)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            bad.append(sample_id)
            continue
        out[n] = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    if bad:
        raise CorruptImages(bad, out)
    return out


class CorruptImages(Exception):
    """Raised by decode with the ids that failed and the array of the rest (zeros where bad)."""

    def __init__(self, ids: list[str], partial: np.ndarray):
        super().__init__(f"{len(ids)} unreadable images")
        self.ids, self.partial = ids, partial


def _hash(parts: list[str]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


SOURCES: dict[str, type[Source]] = {"digits": DigitsSource, "folder": FolderSource,  # what data.source names
                                    "arrays": ArraySource}


def make_source(config: DataConfig) -> Source:
    return SOURCES[config.source](config)


def warn_corrupt(ids: list[str]) -> None:
    shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
    warnings.warn(f"Skipped {len(ids)} unreadable or corrupt image file(s): {shown}.", stacklevel=2)
