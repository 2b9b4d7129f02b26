"""hpsearch: hyperparameter search over timm backbones with Ray Tune and Optuna.

The Python API (the command line is a thin layer over it)::

    import hpsearch
    run = hpsearch.tune("recipes/digits.py", num_samples=8)   # -> hpsearch.Run
    run.ensemble(methods=["average", "greedy"])
    print(run.evaluate())
    run.predict(["my_images/"], model="greedy")

``import hpsearch`` stays light: torch, Ray and Optuna load on first use of a name that needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {  # public name -> the module that defines it
    "tune": "hpsearch.api", "resume": "hpsearch.api", "init": "hpsearch.api", "compare": "hpsearch.api",
    "Run": "hpsearch.api", "Recipe": "hpsearch.recipe", "Range": "hpsearch.options", "Choice": "hpsearch.options",
    "HpsearchError": "hpsearch.errors", "RecipeError": "hpsearch.errors",
}
__all__ = ["Choice", "HpsearchError", "Range", "Recipe", "RecipeError", "Run", "__version__", "compare", "init",
           "resume", "tune"]

if TYPE_CHECKING:
    from hpsearch.api import Run, compare, init, resume, tune
    from hpsearch.errors import HpsearchError, RecipeError
    from hpsearch.options import Choice, Range
    from hpsearch.recipe import Recipe


def __getattr__(name: str) -> Any:
    """Load a public name's module on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hpsearch' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
