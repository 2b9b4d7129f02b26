"""``hpsearch show``: look at the data the way the tutorial does, before searching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hpsearch.data.augment import BatchAugment
from hpsearch.data.dataset import ImageArrays
from hpsearch.io import atomic_save


def _imshow(ax, image: np.ndarray) -> None:
    """Show a (C, H, W) uint8 or [0, 1] float image."""
    image = np.asarray(image, dtype=np.float32)
    image = image / 255.0 if image.max() > 1.5 else image
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(np.clip(image.transpose(1, 2, 0), 0, 1))
    ax.axis("off")


def _figure():
    """A 3x3 grid on a figure with its own Agg canvas (no pyplot: the process's backend stays the caller's)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 7))
    FigureCanvasAgg(fig)
    return fig, fig.subplots(3, 3)


def _save(fig, path: Path) -> Path:
    atomic_save(path, lambda f: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"))
    return path


def plot_samples(train: ImageArrays, classes: tuple[str, ...], path: Path, seed: int = 0, count: int = 9) -> Path:
    """A 3x3 grid of random training images titled with their class names."""
    pick = np.random.default_rng(seed).choice(len(train), size=min(count, len(train)), replace=False)
    fig, axes = _figure()
    for ax, index in zip(axes.flat, pick, strict=False):
        _imshow(ax, train.images[index])
        ax.set_title(classes[train.labels[index]])
    for ax in axes.flat[len(pick):]:
        ax.axis("off")
    return _save(fig, path)


def plot_augmented(train: ImageArrays, augment: BatchAugment, path: Path, seed: int = 0, count: int = 9) -> Path:
    """One training image and ``count - 1`` augmented versions of it, drawn as one batch."""
    index = int(np.random.default_rng(seed).integers(len(train)))
    image = torch.from_numpy(np.array(train.images[index])).float().div(255.0)
    batch = image.unsqueeze(0).repeat(count - 1, 1, 1, 1)
    augmented = augment(batch, torch.Generator().manual_seed(seed))
    fig, axes = _figure()
    _imshow(axes.flat[0], image.numpy())
    axes.flat[0].set_title("original")
    for n, ax in enumerate(axes.flat[1:count]):
        _imshow(ax, augmented[n].numpy())
        ax.set_title(f"augmented {n + 1}")
    return _save(fig, path)
