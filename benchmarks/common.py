"""Shared helpers of the benchmarks: machine facts and writing result tables (Markdown and CSV)."""

from __future__ import annotations

import atexit
import os
import platform
import shutil
import socket
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("HPSEARCH_BENCH_RESULTS", ROOT / "results" / "benchmarks"))
SHARED_FLOWERS = ROOT.parent / "shared" / "data" / "flower_photos_s160.tgz"


def machine() -> dict[str, str]:
    import torch

    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": str(os.cpu_count()), "cpu": model, "torch": torch.__version__, "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"}


def write_results(name: str, table: pd.DataFrame, notes: list[str], quick: bool) -> Path:
    """Write ``results/benchmarks/<name>.md`` and ``.csv`` (``<name>-quick`` in quick mode)."""
    from hpsearch.io import atomic_write

    stem = f"{name}-quick" if quick else name
    facts = machine()
    header = [f"# Benchmark: {name}{' (quick mode)' if quick else ''}", "",
              "Machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()), ""]
    body = table.to_markdown(index=False, floatfmt=".3f")
    atomic_write(RESULTS / f"{stem}.md", "\n".join(header + [body, ""] + [f"- {n}" for n in notes]) + "\n")
    atomic_write(RESULTS / f"{stem}.csv", table.to_csv(index=False))
    print("\n".join(header + [body, ""] + [f"- {n}" for n in notes]))
    return RESULTS / f"{stem}.md"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a Ray head the benchmark starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def flowers_url() -> str:
    if not SHARED_FLOWERS.is_file():
        raise SystemExit(f"needs the flowers archive at {SHARED_FLOWERS}")
    return SHARED_FLOWERS.as_uri()


def scratch_folder(prefix: str, memory: bool = False) -> Path:
    """A temporary folder for the benchmark's runs and caches, removed when the process exits; ``memory``: in
    /dev/shm (tmpfs) where the machine has it."""
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=shm if memory and shm.is_dir() else None))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
