"""What a model costs to deploy: its size and its inference time per image, measured on a given device."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn


@torch.no_grad()
def ms_per_image(model: nn.Module, shape: tuple[int, int, int], device: torch.device, batch_size: int = 1,
                 repeats: int = 5, memory_format: torch.memory_format = torch.contiguous_format,
                 autocast_dtype: torch.dtype | None = None) -> float:
    """Median milliseconds per image of an eval-mode forward pass over a batch of ``batch_size`` random
    ``shape`` images, after one warm-up pass (on CUDA, synchronized around each pass)."""
    was_training = model.training
    model.eval()
    x = torch.rand(batch_size, *shape, device=device).contiguous(memory_format=memory_format)
    timings = []
    try:
        for attempt in range(repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
                model(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if attempt:  # the first pass is a warm-up
                timings.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return 1000.0 * statistics.median(timings) / batch_size
