"""Batched tensor augmentation: random flip, rotation, zoom and shift as one affine warp per image."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class BatchAugment:
    """The tutorial's RandomFlip / RandomRotation / RandomZoom, applied to a whole batch at once.

    ``rotation`` is a fraction of a full turn and ``zoom`` a relative scale change (Keras' factors);
    ``strength`` multiplies rotation, zoom and translate, so ``strength=0`` turns augmentation off.
    """

    flip: bool = True
    rotation: float = 0.1
    zoom: float = 0.1
    translate: float = 0.0
    strength: float = 1.0
    crop: int | None = None  # output side: random-resized crops (ImageNet style) of images stored larger
    crop_scale: tuple[float, float] = (0.35, 1.0)  # area fraction of each crop
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # its aspect ratio

    @property
    def enabled(self) -> bool:
        scaled = (self.rotation + self.zoom + self.translate) * self.strength
        return self.crop is not None or (self.strength > 0 and (self.flip or scaled > 0))

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment float images (B, C, H, W); the random draws come from ``generator`` (CPU)."""
        if not self.enabled:
            return images
        batch = images.shape[0]
        theta = self.sample_affine(batch, generator) if self.strength > 0 else identity(batch)
        if self.crop is not None:
            theta = compose(self.sample_crops(batch, generator), theta)
        side = self.crop or images.shape[-1]
        grid = F.affine_grid(theta.to(images.device, images.dtype), [batch, images.shape[1], side, side],
                             align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def sample_crops(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """(B, 2, 3) maps from a crop's coordinates to the stored image's: a random area and aspect ratio,
        placed anywhere it fits."""
        area = self.crop_scale[0] + torch.rand(batch, generator=generator) * (self.crop_scale[1] - self.crop_scale[0])
        low, high = math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])
        ratio = torch.exp(low + torch.rand(batch, generator=generator) * (high - low))
        width, height = torch.sqrt(area * ratio).clamp(max=1.0), torch.sqrt(area / ratio).clamp(max=1.0)
        theta = torch.zeros(batch, 2, 3)
        theta[:, 0, 0], theta[:, 1, 1] = width, height
        theta[:, 0, 2] = (torch.rand(batch, generator=generator) * 2 - 1) * (1 - width)
        theta[:, 1, 2] = (torch.rand(batch, generator=generator) * 2 - 1) * (1 - height)
        return theta

    def sample_affine(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """(B, 2, 3) affine matrices mapping output to input coordinates."""
        def uniform(bound: float) -> torch.Tensor:
            return (torch.rand(batch, generator=generator) * 2 - 1) * bound

        angle = uniform(self.rotation * self.strength * 2 * math.pi)
        scale = 1.0 - uniform(min(self.zoom * self.strength, 0.9))
        flip = torch.ones(batch)
        if self.flip:
            flip = torch.where(torch.rand(batch, generator=generator) < 0.5, -1.0, 1.0)
        shift = torch.stack([uniform(self.translate * self.strength * 2) for _ in range(2)], dim=1)
        cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
        theta = torch.zeros(batch, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin
        theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
        theta[:, :, 2] = shift
        return theta


def identity(batch: int) -> torch.Tensor:
    return torch.eye(2, 3).expand(batch, 2, 3).clone()


def compose(outer: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    """The affine map ``outer(inner(p))`` for (B, 2, 3) matrices."""
    homogeneous = torch.cat([inner, torch.tensor([0.0, 0.0, 1.0]).expand(inner.shape[0], 1, 3)], dim=1)
    return outer @ homogeneous
