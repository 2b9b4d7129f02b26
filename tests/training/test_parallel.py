"""Data-parallel training without Ray: two processes on gloo follow one process at the same global batch, through
``freeze_epochs`` (the DDP wrapper is rebuilt when the set of trainable parameters changes)."""

from __future__ import annotations

import os
from datetime import timedelta

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hpsearch.training import Trainer, TrialConfig, train_trial
from hpsearch.training.parallel import DataParallel
from tests.conftest import free_port

# no augmentation, dropout or BatchNorm: the only difference between 1 and 2 workers is how each batch is split
SAME_PATH = TrialConfig(backbone="tutorial_cnn", lr=3e-3, batch_size=32, epochs=3, warmup_epochs=0.5, patience=5,
                        flip=False, rotation=0.0, zoom=0.0, translate=0.0, aug_strength=0.0, drop_rate=0.0,
                        freeze_epochs=1)


def train_worker(rank: int, world: int, port: int, config: TrialConfig, data, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=120))
    torch.set_num_threads(1)
    try:
        outcome = Trainer(config, data, parallel=DataParallel(rank, world)).fit()
        if rank == 0:
            torch.save({"history": outcome.history, "state": outcome.best.state_dict}, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_workers_follow_one_through_freeze_epochs(tiny_data, tmp_path):
    one = train_trial(SAME_PATH, tiny_data)
    out = tmp_path / "two.pt"
    mp.spawn(train_worker, args=(2, free_port(), SAME_PATH, tiny_data, str(out)), nprocs=2)
    two = torch.load(out, weights_only=False)
    assert [m["epoch"] for m in two["history"]] == [1, 2, 3]
    losses = [m["train_loss"] for m in one.history]
    assert losses[-1] < losses[0]  # it learns, so the curves say something
    for column in ("train_loss", "val_loss", "val_acc"):
        np.testing.assert_allclose([m[column] for m in two["history"]], [m[column] for m in one.history],
                                   rtol=2e-3, atol=2e-3, err_msg=column)
    # the backbone, frozen in epoch 1 and trained after it (a new DDP wrapper), ends where one process puts it
    for name, weight in one.best.state_dict.items():
        np.testing.assert_allclose(two["state"][name].numpy(), weight.numpy(), rtol=1e-3, atol=1e-4, err_msg=name)
