"""The ``data`` section of a recipe."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hpsearch.errors import RecipeError

SOURCES = ("digits", "folder", "arrays")


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are prepared (the recipe's ``data`` section)."""

    source: str = "digits"
    """``"digits"`` (scikit-learn's bundled 8x8 digits, no download), ``"folder"`` (``root`` or ``url``), or
    ``"arrays"`` (``root`` holds images.npy, uint8 N x C x H x W, labels.npy and classes.txt)."""
    root: str | None = None
    """A folder of ``<class>/<image>`` files (.jpg .jpeg .png .bmp .webp; 16-bit PNGs are scaled to 8 bits,
    not clipped; hidden files and macOS's ``._name`` and ``__MACOSX`` resource forks are skipped)."""
    url: str | None = None
    """Without ``root``: an http, https or file URL of a .tgz/.zip archive, downloaded once into the cache and
    extracted with no path traversal."""
    sha256: str | None = None
    """The archive's expected SHA-256 (checked after download)."""
    classes: tuple[str, ...] | None = None
    """The class folders the dataset must have (checked)."""
    min_images: int = 0
    """The fewest images the dataset may have (checked: an incomplete archive is an error)."""
    image_size: int = 32
    """Side of the square images the networks see, in pixels (decoded once, cached per size)."""
    grayscale: bool = False
    """Decode as one grey channel (digits always are)."""
    normalize: Literal["auto", "unit", "imagenet", "half"] = "auto"
    """``"unit"``: pixels in [0, 1]; ``"imagenet"``: ImageNet mean/std; ``"half"``: [-1, 1]; ``"auto"``: the
    backbone's own mean/std with pretrained weights, else [0, 1]."""
    val_fraction: float = 0.15
    """Share of the images in the validation split (stratified, seeded)."""
    test_fraction: float = 0.15
    """Share of the images in the test split, read once by ``evaluate``."""
    cache_dir: str | None = None
    """Downloads and decoded images (default ``$HPSEARCH_CACHE``, else ``~/.cache/hpsearch``)."""
    max_image_pixels: int = 50_000_000
    """Larger images (decompression bombs) are skipped as unreadable."""
    crop_ratio: float = 1.0
    """Above 1: images are stored that much larger, trained on random crops and evaluated centred."""

    def validate(self) -> None:
        if self.source not in SOURCES:
            raise RecipeError(f"data.source must be one of {list(SOURCES)}, but got source={self.source!r}.")
        if self.source == "digits" and (self.root or self.url):
            which = "data.root" if self.root else "data.url"
            raise RecipeError(f"{which} is only read with data.source='folder', but the source is 'digits'; add "
                              f"--set data.source=folder, or drop {which}.")
        if self.source == "arrays" and not self.root:
            raise RecipeError("data.source='arrays' needs data.root: a folder with images.npy (uint8, N x C x H x W), "
                              "labels.npy and classes.txt.")
        if self.source == "folder" and not (self.root or self.url):
            raise RecipeError("data.source='folder' needs data.root or data.url, e.g. --set data.root=/path/to/images "
                              "or --set data.url=file:///path/to/archive.tgz.")
        if not 4 <= self.image_size <= 1024:
            raise RecipeError(f"data.image_size must be between 4 and 1024 pixels, but got {self.image_size=}.")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 < value < 0.5:
                raise RecipeError(f"data.{name} must be in (0, 0.5), but got {value=}.")
        if not 1.0 <= self.crop_ratio <= 2.0:
            raise RecipeError(f"data.crop_ratio must be between 1 (no cropping) and 2, but got {self.crop_ratio=}; "
                              f"1.15 is ImageNet's usual ratio.")
        if self.max_image_pixels < 1:
            raise RecipeError(f"data.max_image_pixels must be positive, but got {self.max_image_pixels=}.")

    @property
    def stored_size(self) -> int:
        """The side images are decoded and cached at: ``image_size``, or larger with ``crop_ratio``."""
        return int(round(self.image_size * self.crop_ratio))

    @property
    def crop(self) -> int | None:
        """The side models see, when images are stored larger than it (else None: no cropping)."""
        return self.image_size if self.stored_size != self.image_size else None

    @property
    def in_chans(self) -> int:
        return 1 if self.grayscale or self.source == "digits" else 3

    @property
    def cache_path(self) -> Path:
        """``cache_dir``, else ``$HPSEARCH_CACHE``, else ``$XDG_CACHE_HOME/hpsearch`` or ``~/.cache/hpsearch``."""
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        if os.environ.get("HPSEARCH_CACHE"):
            return Path(os.environ["HPSEARCH_CACHE"]).expanduser()
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hpsearch"

    @property
    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std applied after scaling pixels to [0, 1] (``auto``: as ``unit``)."""
        if self.normalize == "imagenet":
            mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
            if self.in_chans == 1:
                mean, std = (sum(mean) / 3,), (sum(std) / 3,)
            return mean, std
        mean, std = (0.5, 0.5) if self.normalize == "half" else (0.0, 1.0)
        return (mean,) * self.in_chans, (std,) * self.in_chans
