"""Training batches on their device: reused buffers on a CPU, overlapped copies on CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hpsearch.training import BatchBuffer
from hpsearch.training.prefetch import CudaPrefetcher, device_batches


def expected(images: np.ndarray, index: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images[index].astype(np.float32) / 255.0)


def batches_of(images: np.ndarray, indices: list[np.ndarray], device: torch.device, prefetcher=None):
    # each batch is valid until the next one is asked for: copy as they come
    return [batch.cpu().clone() for batch in device_batches(images, indices, device, BatchBuffer(), prefetcher)]


@pytest.fixture
def images_and_indices():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 3, 6, 6), dtype=np.uint8)
    indices = [np.sort(rng.choice(40, size=size, replace=False)) for size in (8, 8, 5, 8)]
    return images, indices


def test_cpu_batches_are_the_indexed_rows_as_floats(images_and_indices):
    images, indices = images_and_indices
    got = batches_of(images, indices, torch.device("cpu"))
    assert len(got) == len(indices)
    for batch, index in zip(got, indices, strict=True):
        torch.testing.assert_close(batch, expected(images, index))
    assert batches_of(images, [], torch.device("cpu")) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_prefetched_batches_equal_the_cpu_ones(images_and_indices):
    images, indices = images_and_indices
    device = torch.device("cuda")
    got = batches_of(images, indices * 3, device, CudaPrefetcher(device))  # both slots reused several times
    for batch, index in zip(got, indices * 3, strict=True):
        torch.testing.assert_close(batch, expected(images, index))
