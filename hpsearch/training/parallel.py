"""Data-parallel training (DDP) for one trial run by several processes, unaware of Ray.

Every worker draws the same batch order and the same augmentation parameters (one seed for all of them) and
trains on its own slice of each global batch; gradients are averaged across workers by
``DistributedDataParallel``, so N workers with a per-worker batch of B/N follow the same path as one worker with
a batch of B (BatchNorm statistics aside: each worker normalizes its own slice). The caller sets up
``torch.distributed`` (Ray Train does) before a ``Trainer`` gets a ``DataParallel``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DataParallel:
    """This process's place in a data-parallel trial: worker ``rank`` of ``world``, whose collectives run on
    ``device`` (NCCL reduces CUDA tensors only)."""

    rank: int
    world: int
    device: str = "cpu"

    @property
    def leader(self) -> bool:
        """Rank 0 measures costs, writes checkpoints and speaks for the trial."""
        return self.rank == 0

    def check_batch(self, batch_size: int, pairs: bool) -> None:
        """The global batch must split evenly (into even slices when mixup pairs images up)."""
        share, rest = divmod(batch_size, self.world)
        if rest or share < 1 or (pairs and share % 2):
            need = "an even multiple" if pairs else "a multiple"
            raise ValueError(f"train.batch_size ({batch_size}) must be {need} of budget.workers_per_trial "
                             f"({self.world}): each worker trains on an equal slice of every batch")

    def shard(self, index: np.ndarray) -> np.ndarray:
        """This worker's slice of a global batch."""
        return index[self.rank::self.world]

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` under DDP (rank 0's weights and buffers are broadcast to every worker)."""
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def sum(self, *values: float) -> list[float]:
        """Each value summed over the workers."""
        total = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return total.cpu().tolist()

    def any(self, flag: bool) -> bool:
        """Whether any worker's ``flag`` is set (every worker gets the same answer)."""
        return self.sum(float(flag))[0] > 0
