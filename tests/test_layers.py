"""The code's shape: import layers, the run-directory contract's single owner, and the linter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Lowest first. A module may import hpsearch modules of its own layer or a lower one, never a higher one.
LAYERS = [
    ("foundation", ["hpsearch.errors", "hpsearch.io", "hpsearch.config", "hpsearch.options", "hpsearch.allocator"]),
    ("data", ["hpsearch.data"]),
    ("models", ["hpsearch.models"]),
    ("training", ["hpsearch.training"]),
    ("rundir", ["hpsearch.rundir", "hpsearch.runinfo"]),
    ("search", ["hpsearch.search", "hpsearch.recipe", "hpsearch.recipe_source", "hpsearch.presets",
                "hpsearch.reference"]),
    ("ensemble", ["hpsearch.ensemble"]),
    ("evaluation", ["hpsearch.evaluation"]),
    ("report", ["hpsearch.report"]),
    ("entry points", ["hpsearch.cli", "hpsearch.argtypes", "hpsearch.api", "hpsearch.__main__", "hpsearch"]),
]
# (importer layer, imported prefix): forbidden even where the layers would allow it, or for outside packages
FORBIDDEN = [
    ("evaluation", "hpsearch.search"),  # a finished run is evaluated without the search's machinery
    ("evaluation", "ray"), ("evaluation", "optuna"),
    ("data", "ray"), ("models", "ray"), ("training", "ray"), ("rundir", "ray"),
    ("data", "optuna"), ("models", "optuna"), ("training", "optuna"), ("rundir", "optuna"),
]


def layer_of(module: str) -> int | None:
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    return None if best is None else best[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Every module ``path`` imports, at any depth (functions included), with its line number."""
    found = []
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.append((base, node.lineno))
    return found


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_no_layer_imports_a_higher_one():
    problems = []
    for path in sources("hpsearch"):
        own = layer_of(module_name(path))
        assert own is not None, f"{path} belongs to no layer; add it to LAYERS"
        own_name = LAYERS[own][0]
        for imported, line in imports_of(path):
            target = layer_of(imported)
            if target is not None and target > own:
                where = f"{path.relative_to(ROOT)}:{line} ({own_name})"
                problems.append(f"{where} imports {imported} ({LAYERS[target][0]})")
            for importer, prefix in FORBIDDEN:
                if importer == own_name and (imported == prefix or imported.startswith(prefix + ".")):
                    problems.append(f"{path.relative_to(ROOT)}:{line} ({own_name}) must not import {imported}")
    assert not problems, "\n".join(problems)


def test_the_ensembles_library_imports_nothing_of_hpsearch_ray_or_optuna():
    problems = [f"{path.relative_to(ROOT)}:{line} imports {name}" for path in sources("ensembles")
                for name, line in imports_of(path) if name.split(".")[0] in ("hpsearch", "ray", "optuna")]
    assert not problems, "\n".join(problems)


def test_the_contract_itself_catches_an_upward_import(tmp_path):
    """The checker must be able to fail: a data module importing the search is reported."""
    bad = ROOT / "hpsearch" / "data" / "_layer_probe.py"
    bad.write_text("from hpsearch.search.tune import run_search\n")
    try:
        with pytest.raises(AssertionError, match=r"_layer_probe.py:1 \(data\) imports hpsearch.search.tune"):
            test_no_layer_imports_a_higher_one()
    finally:
        bad.unlink()


def test_evaluation_and_report_load_neither_ray_nor_optuna():
    code = ("import sys, hpsearch.evaluation, hpsearch.report, hpsearch.rundir; "
            "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in ('ray', 'optuna')} | "
            "{m for m in sys.modules if m.startswith('hpsearch.search')}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout


def test_ruff_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]
