"""What every run directory records: the recipe copy, resolved config and environment."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hpsearch.errors import HpsearchError
from hpsearch.io import atomic_write, read_json, write_json
from hpsearch.rundir import CONFIG_FILE, ENV_FILE, RECIPE_FILE

PACKAGES = ("hpsearch", "torch", "torchvision", "timm", "optuna", "ray", "scikit-learn", "pandas", "numpy",
            "matplotlib", "pillow")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_revision(folder: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def environment(seed: int, recipe_path: Path) -> dict[str, Any]:
    import torch

    return {
        "seed": seed, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python": sys.version.split()[0],
        "platform": platform.platform(), "cpu_count": os.cpu_count(), "cuda": torch.cuda.is_available(),
        "packages": package_versions(), "git_revision": git_revision(recipe_path.parent),
        "hpsearch_git_revision": git_revision(Path(__file__).parent), "argv": sys.argv,
    }


def ensure_writable(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise HpsearchError(f"Cannot write to the output folder {str(run_dir)!r} ({err.strerror}); "
                            f"choose another with --out.") from None


def record_run(run_dir: Path, recipe_path: Path, resolved: dict[str, Any], seed: int, source: str,
               resumed: bool = False, changes: dict[str, Any] | None = None) -> None:
    """Copy the recipe and write ``config.json`` and ``env.json`` into ``run_dir``.

    A resume keeps the first environment record and appends itself to ``config.json``'s ``resumes``, with the
    budget values it changed (the recipe's data, model and training sections cannot change on resume).
    """
    ensure_writable(run_dir)
    if resumed and (run_dir / CONFIG_FILE).is_file():
        stored = read_json(run_dir / CONFIG_FILE)
        when = {"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "budget_changes": changes or {}, "argv": sys.argv}
        resolved = {**resolved, "resumes": [*stored.get("resumes", []), when]}
    else:
        atomic_write(run_dir / RECIPE_FILE, source)
        write_json(run_dir / ENV_FILE, environment(seed, recipe_path))
    write_json(run_dir / CONFIG_FILE, resolved)
