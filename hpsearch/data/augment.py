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

    @property
    def enabled(self) -> bool:
        scaled = (self.rotation + self.zoom + self.translate) * self.strength
        return self.strength > 0 and (self.flip or scaled > 0)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment float images (B, C, H, W); the random draws come from ``generator`` (CPU)."""
        if not self.enabled:
            return images
        theta = self.sample_affine(images.shape[0], generator).to(images.device, images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

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
