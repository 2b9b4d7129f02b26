"""A training run's own random state, kept apart from the process's global generators."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


def _global_state(cuda: bool) -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if cuda:
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_global_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def preserved_global_rng(fresh: bool = False) -> Iterator[None]:
    """Whatever runs inside (a model's random initialization that is overwritten at once, Ray's driver) leaves
    the process's Python, NumPy and torch (CPU) generators as they were.

    ``fresh`` reseeds Python's and NumPy's generators from the operating system inside, for code that needs new
    random numbers each time (Ray draws its ports from ``random``: restored to one state, every session in the
    process would draw the same ones)."""
    state = _global_state(cuda=False)
    if fresh:
        random.seed()
        np.random.seed()
    try:
        yield
    finally:
        _set_global_state(state)


class RandomState:
    """Seeded generators for one run: ``batches`` (shuffling, augmentation) plus the global Python, NumPy and
    torch generators that dropout and timm's Mixup draw from.

    The global ones are swapped in only inside ``with state:`` and swapped back out afterwards, so a run is
    reproducible, can be checkpointed and resumed exactly, and leaves the caller's random state as it was.
    """

    def __init__(self, seed: int, cuda: bool = False):
        self.cuda = cuda
        outer = _global_state(cuda)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        self._inner = _global_state(cuda)
        _set_global_state(outer)
        self.batches = torch.Generator().manual_seed(seed)
        self._outer: list[dict[str, Any]] = []

    def __enter__(self) -> RandomState:
        self._outer.append(_global_state(self.cuda))
        _set_global_state(self._inner)
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner = _global_state(self.cuda)
        _set_global_state(self._outer.pop())

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain numbers only, so that ``torch.load(weights_only=True)`` reads it back."""
        version, internal, gauss = self._inner["python"]
        _, keys, pos, has_gauss, cached = self._inner["numpy"]
        state = {"python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
                 "numpy": [torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
                 "torch": self._inner["torch"], "batches": self.batches.get_state()}
        if "cuda" in self._inner:
            state["cuda"] = list(self._inner["cuda"])
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        version, internal, gauss = state["python"]
        keys, pos, has_gauss, cached = state["numpy"]
        self._inner = {"python": (version, tuple(int(v) for v in internal.tolist()), gauss),
                       "numpy": ("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, cached),
                       "torch": state["torch"]}
        if self.cuda and "cuda" in state:
            self._inner["cuda"] = state["cuda"]
        elif self.cuda:
            self._inner["cuda"] = torch.cuda.get_rng_state_all()
        self.batches.set_state(state["batches"])
