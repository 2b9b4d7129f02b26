"""Training batches on their device: a reused host buffer on a CPU; on CUDA, the next batch's copy overlaps the
current step.

On CUDA, each batch's rows are gathered into one of two pinned uint8 host buffers and copied to the GPU on a
side stream while the previous batch trains; the GPU converts it to floats (a quarter of the bytes cross the
bus). The slot a copy reads from is refilled only after that copy finished (an event per slot).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from hpsearch.training.inference import BatchBuffer


class CudaPrefetcher:
    """Double-buffered pinned host memory and a side stream that copies batches to ``device`` ahead of use."""

    def __init__(self, device: torch.device):
        self.device = device
        self.stream = torch.cuda.Stream(device)
        self.host: list[torch.Tensor | None] = [None, None]
        self.copied: list[torch.cuda.Event | None] = [None, None]
        self.slot = 0
        self.pending: tuple[torch.Tensor, torch.cuda.Event] | None = None

    def start(self, images: np.ndarray, index: np.ndarray) -> None:
        """Gather ``images[index]`` into a pinned buffer and start its copy to the device."""
        slot, self.slot = self.slot, 1 - self.slot
        if self.copied[slot] is not None:
            self.copied[slot].synchronize()  # the copy that last read this buffer is done
        shape = (len(index), *images.shape[1:])
        host = self.host[slot]
        if host is None or host.shape[0] < shape[0] or tuple(host.shape[1:]) != shape[1:]:
            host = self.host[slot] = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        rows = host[:shape[0]]
        np.take(images, index, axis=0, out=rows.numpy())
        with torch.cuda.stream(self.stream):
            on_device = rows.to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self.stream)
        self.copied[slot] = event
        self.pending = (on_device, event)

    def take(self) -> torch.Tensor:
        """The batch started last, as floats in [0, 1], once its copy is done (for the current stream)."""
        assert self.pending is not None, "start() a batch first"
        on_device, event = self.pending
        self.pending = None
        current = torch.cuda.current_stream(self.device)
        current.wait_event(event)
        on_device.record_stream(current)  # allocated on the side stream, used on this one
        return on_device.float().div_(255.0)


def device_batches(images: np.ndarray, indices: Sequence[np.ndarray], device: torch.device, buffer: BatchBuffer,
                   prefetcher: CudaPrefetcher | None = None) -> Iterator[torch.Tensor]:
    """``images[index]`` for each index in turn, as floats in [0, 1] on ``device``. Each batch is valid until the
    next one is asked for. With a ``prefetcher`` (CUDA), batch k + 1 is copied while batch k is used."""
    if prefetcher is None:
        for index in indices:
            yield buffer.load(images, index, device)
        return
    if len(indices):
        prefetcher.start(images, indices[0])
    for step in range(len(indices)):
        batch = prefetcher.take()
        if step + 1 < len(indices):
            prefetcher.start(images, indices[step + 1])
        yield batch
