"""Mixed precision for one run: bfloat16 autocast where the device supports it, else float16 with a gradient
scaler (CUDA); off by default on the CPU, on by default on a GPU."""

from __future__ import annotations

import contextlib
from typing import Any

import torch


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu"


class Precision:
    """How one run computes: ``autocast()`` around the forward pass, ``step()`` for backward and update."""

    def __init__(self, amp: bool | None, device: torch.device):
        enabled = device.type == "cuda" if amp is None else amp
        self.device = device
        self.dtype: torch.dtype | None = None
        self.scaler: torch.amp.GradScaler | None = None
        if enabled and bf16_supported(device):
            self.dtype = torch.bfloat16
        elif enabled and device.type == "cuda":
            self.dtype, self.scaler = torch.float16, torch.amp.GradScaler("cuda")

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {} if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
