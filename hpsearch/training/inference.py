"""Turning uint8 images into class probabilities: batches without allocation churn, and test-time augmentation.

A batch-sized float tensor allocated afresh for every batch makes glibc map and zero new memory each time
(system time then rivals user time); ``BatchBuffer`` keeps one uint8 and one float buffer and fills them. The
network's own activations are allocated per forward pass too: on a CPU, inference runs in micro-batches small
enough that they stay below glibc's mmap threshold and are reused (``cpu_inference_batch``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hpsearch.data import ImageArrays

TTA_VIEWS = ("flip", "shift", "scale")  # what ``views`` may name; each adds its views to the plain image
# Input bytes per forward pass on a CPU. EfficientNet-Lite0 at 160 px, 512 images on 2 cores: 29 images/s at
# batch 256 (system time twice the user time: every activation a fresh, zeroed mmap), 99 at batch 8.
CPU_BATCH_BYTES = 2 * 2**20


def inference_layout(model: nn.Module) -> nn.Module:
    """``model`` in eval mode with its weights in NHWC (channels-last) layout, in place: the same
    probabilities to float rounding, faster on recent GPUs and on a CPU (oneDNN; 1.1-3.7x the images/s of
    ``predict_proba`` on 2 cores: ``results/benchmarks/pipeline_inference.md``)."""
    return model.to(memory_format=torch.channels_last).eval()


def cpu_inference_batch(image_shape: tuple[int, ...], batch_size: int) -> int:
    """Images per forward pass on a CPU: at most ``batch_size``, and few enough that an input batch of
    ``image_shape`` (C, H, W) floats stays within ``CPU_BATCH_BYTES`` (at least one)."""
    per_image = 4 * int(np.prod(image_shape))
    return max(1, min(batch_size, CPU_BATCH_BYTES // per_image))


class Normalizer(nn.Module):
    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def apply_(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` in place (for a batch that is already a buffer of its own)."""
        return x.sub_(self.mean).div_(self.std)


class BatchBuffer:
    """Reusable host buffers for batches of one image shape: rows of a uint8 array -> a float batch in [0, 1]."""

    def __init__(self):
        self._raw: np.ndarray | None = None
        self._float: torch.Tensor | None = None

    def _ensure(self, images: np.ndarray, count: int) -> None:
        shape = (count, *images.shape[1:])
        if self._raw is None or self._raw.shape[0] < count or self._raw.shape[1:] != shape[1:]:
            self._raw = np.empty(shape, dtype=np.uint8)
            self._float = torch.empty(shape, dtype=torch.float32)

    def load(self, images: np.ndarray, index: np.ndarray | slice, device: torch.device) -> torch.Tensor:
        """``images[index]`` as floats in [0, 1] on ``device`` (a view of the buffer on the CPU: use it before
        the next ``load``)."""
        rows = images[index] if isinstance(index, slice) else None
        count = len(rows) if rows is not None else len(index)
        self._ensure(images, count)
        raw = self._raw[:count]
        if rows is not None:
            np.copyto(raw, rows)
        else:
            np.take(images, index, axis=0, out=raw)
        batch = self._float[:count]
        batch.copy_(torch.from_numpy(raw)).div_(255.0)
        return batch if device.type == "cpu" else batch.to(device, non_blocking=True)


AFFINE_VIEWS = {  # output -> input coordinates, as torch.nn.functional.affine_grid takes them
    "shift_left": ((1.0, 0.0, -0.1), (0.0, 1.0, 0.0)),
    "shift_right": ((1.0, 0.0, 0.1), (0.0, 1.0, 0.0)),
    "zoom_in": ((0.9, 0.0, 0.0), (0.0, 0.9, 0.0)),
}
VIEW_NAMES = {"flip": ("flip",), "shift": ("shift_left", "shift_right"), "scale": ("zoom_in",)}


def view_names(views: tuple[str, ...]) -> list[str]:
    """Every view an image is seen in: itself first, then those that ``views`` ask for."""
    unknown = [v for v in views if v not in TTA_VIEWS]
    if unknown:
        raise ValueError(f"unknown test-time augmentation view(s) {unknown}; choose from {list(TTA_VIEWS)}")
    return ["identity", *[name for view in TTA_VIEWS if view in views for name in VIEW_NAMES[view]]]


def apply_view(x: torch.Tensor, name: str) -> torch.Tensor:
    """One view of a batch: itself, its mirror, a shift or a zoom (bilinear, reflected borders)."""
    if name == "identity":
        return x
    if name == "flip":
        return x.flip(-1)
    theta = torch.tensor(AFFINE_VIEWS[name], dtype=x.dtype, device=x.device).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def center_crop(x: torch.Tensor, side: int | None) -> torch.Tensor:
    """The centred ``side`` x ``side`` square of a batch (images stored larger than models see them)."""
    if side is None or side == x.shape[-1]:
        return x
    top, left = (x.shape[-2] - side) // 2, (x.shape[-1] - side) // 2
    return x[..., top:top + side, left:left + side]


@torch.no_grad()
def predict_proba(model: nn.Module, arrays: ImageArrays, normalize: Normalizer, batch_size: int,
                  device: torch.device, views: tuple[str, ...] = (), crop: int | None = None,
                  plain: np.ndarray | None = None) -> np.ndarray:
    """Softmax class probabilities for every image, in order (centre-cropped to ``crop``); with ``views``,
    averaged over the test-time views (``plain``: the images' own probabilities, already computed, which the
    average then takes instead of a forward pass of its own). On a CPU, ``batch_size`` is capped by
    ``cpu_inference_batch``."""
    model.eval()
    names = view_names(views)
    count = len(names)
    names = names[1:] if plain is not None else names  # "identity" comes first
    out = np.empty((len(arrays), 0), dtype=np.float32)
    buffer = BatchBuffer()
    if device.type == "cpu":
        batch_size = cpu_inference_batch(arrays.images.shape[1:], batch_size)
    for start in range(0, len(arrays), batch_size):
        x = normalize.apply_(center_crop(buffer.load(arrays.images, slice(start, start + batch_size), device), crop))
        probs = sum(torch.softmax(model(apply_view(x, name)).float(), dim=1) for name in names)
        if plain is not None:
            probs = probs + torch.from_numpy(plain[start:start + len(x)]).to(probs.device)
        probs = probs / count
        if out.shape[1] == 0:
            out = np.empty((len(arrays), probs.shape[1]), dtype=np.float32)
        out[start:start + len(probs)] = probs.cpu().numpy()
    return out


def default_tta_views(flip: bool) -> tuple[str, ...]:
    """The test-time views tried when none are asked for: mirror images for a model trained on mirrored ones,
    else small shifts."""
    return ("flip",) if flip else ("shift",)


def tta_cost(views: tuple[str, ...]) -> int:
    """How many forward passes an image costs with these views."""
    return len(view_names(views))
