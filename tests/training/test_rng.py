"""preserved_global_rng: code inside it leaves the process's random generators as they were."""

from __future__ import annotations

import random

import numpy as np
import torch

from hpsearch.training import preserved_global_rng


def draws() -> tuple:
    return random.random(), float(np.random.random()), float(torch.rand(1))


def test_the_generators_continue_as_if_nothing_ran_inside():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = draws()
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    with preserved_global_rng():
        torch.nn.Linear(64, 64)  # a random initialization
        draws()
    assert draws() == expected


def test_fresh_draws_new_numbers_inside_each_time_and_still_restores():
    random.seed(2), np.random.seed(2)
    inside = []
    for _ in range(2):
        with preserved_global_rng(fresh=True):
            inside.append((random.randint(0, 2**62), int(np.random.randint(0, 2**62))))
    assert inside[0] != inside[1]  # Ray's random ports differ from one session to the next
    random.seed(2), np.random.seed(2)
    assert (random.randint(0, 2**62), int(np.random.randint(0, 2**62))) != inside[0]
    random.seed(2), np.random.seed(2)
    expected = random.random(), float(np.random.random())
    random.seed(2), np.random.seed(2)
    with preserved_global_rng(fresh=True):
        random.random(), np.random.random()
    assert (random.random(), float(np.random.random())) == expected
