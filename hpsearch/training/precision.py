"""Mixed precision for one run: bfloat16 autocast where the device supports it, else float16 with a gradient
scaler (CUDA); off by default on the CPU, on by default on a GPU."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import torch

log = logging.getLogger(__name__)
NATIVE_CPU_BF16 = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's checks, x86 only


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (x86 AVX512-BF16 or AMX); elsewhere autocast emulates it
    (an Arm CPU with bfloat16 instructions is not recognized: torch offers no check for it)."""
    checks = [getattr(torch.cpu, name, None) for name in NATIVE_CPU_BF16]
    return any(check() for check in checks if check is not None)


class Precision:
    """How one run computes: ``autocast()`` around the forward pass, ``step()`` for backward and update."""

    def __init__(self, amp: bool | None, device: torch.device):
        enabled = device.type == "cuda" if amp is None else amp
        self.device = device
        self.dtype: torch.dtype | None = None
        self.scaler: torch.amp.GradScaler | None = None
        if enabled and bf16_supported(device):
            self.dtype = torch.bfloat16
            if device.type == "cpu" and not cpu_has_native_bf16():
                log.warning("train.amp=true on a CPU without AVX512-BF16 or AMX: bfloat16 is emulated there and may "
                            "train slower than float32; set train.amp=false if it does.")
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
