"""Recipes: plain Python files that define ``data``, ``train``, ``space``, ``budget`` and ``seed``.

A recipe is trusted code (it is executed); it should only define names, with no side effects.
It is compiled under its own file name, so tracebacks point into the recipe file itself.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from hpsearch.config import apply_overrides, build_section, check_value, literal_or_text, parse_value, split_assignment
from hpsearch.data import DataConfig
from hpsearch.errors import RecipeError, did_you_mean
from hpsearch.search.budget import BudgetConfig
from hpsearch.training import TrialConfig

SECTIONS: dict[str, type] = {"data": DataConfig, "train": TrialConfig, "budget": BudgetConfig}
SCALARS: dict[str, Any] = {"seed": int, "name": str, "warm_start": list[str]}
REQUIRED = ("data", "space")
OPTIONS = "options"  # free-form values the recipe's space(trial, options) reads; types follow the defaults


@dataclass(frozen=True)
class Recipe:
    """A loaded, validated recipe with any ``--set`` overrides applied."""

    path: Path
    name: str
    seed: int
    data: DataConfig
    train: TrialConfig
    budget: BudgetConfig
    space: Callable[..., dict[str, Any] | None]
    source: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    warm_start: list[str] = dataclasses.field(default_factory=list)  # earlier run directories (absolute)
    defaults: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # configurations tried first

    def resolved(self) -> dict[str, Any]:
        """Everything but the space function, as plain data (for ``config.json``)."""
        return {"recipe": str(self.path), "name": self.name, "seed": self.seed,
                **{s: dataclasses.asdict(getattr(self, s)) for s in SECTIONS}, OPTIONS: self.options,
                "warm_start": self.warm_start, "defaults": self.defaults}


def module_name(path: Path) -> str:
    return "hpsearch_recipe_" + re.sub(r"\W", "_", path.stem)


def load_module(path: str | Path, source: str | None = None) -> ModuleType:
    """Execute the recipe (the file, or ``source`` under its name) as a module; tracebacks point into the file.

    The one way a recipe runs, in the driver and in every Ray worker: a worker that already ran the same
    text reuses that module (models it registered with timm stay registered once).
    """
    path = Path(path).expanduser().resolve()
    if source is None:
        if not path.is_file():
            raise RecipeError(f"Recipe file {str(path)!r} does not exist; pass the path to a .py recipe, "
                              f"e.g. recipes/digits.py.")
        if path.suffix != ".py":
            raise RecipeError(f"A recipe is a Python file ending in .py, but got {str(path)!r}.")
        source = path.read_text()
    name = module_name(path)
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__recipe_source__", None) == source:
        return loaded
    module = ModuleType(name)
    module.__file__ = str(path)
    module.__recipe_source__ = source
    sys.modules[name] = module  # lets pickle find the recipe's functions by reference
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102  recipes are trusted code
    except SyntaxError as err:
        sys.modules.pop(name, None)
        raise RecipeError(f"Syntax error in recipe {err.filename}, line {err.lineno}: {err.msg}.\n"
                          f"    {(err.text or '').rstrip()}") from None
    except Exception:
        sys.modules.pop(name, None)
        raise
    return module


def infer_hint(value: Any) -> Any:
    """The type an option's override must have, from its default value."""
    if isinstance(value, (list, tuple)):
        item = infer_hint(value[0]) if value and all(type(v) is type(value[0]) for v in value) else Any
        return list[item] if isinstance(value, list) else tuple[item, ...]
    return Any if value is None else type(value)


def apply_option_overrides(options: dict[str, Any], assignments: dict[str, str]) -> dict[str, Any]:
    result = dict(options)
    for key, text in assignments.items():
        if key not in options:
            raise RecipeError(f"Unknown --set key {OPTIONS}.{key!r}.{did_you_mean(key, options)} "
                              f"The recipe's options are: {', '.join(sorted(options)) or 'none'}.")
        hint = infer_hint(options[key])
        result[key] = parse_value(f"{OPTIONS}.{key}", text, hint) if hint is not Any else literal_or_text(text)
    return result


def group_overrides(assignments: list[str]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Sort ``key=value`` strings into per-section overrides and top-level scalar overrides."""
    sections: dict[str, dict[str, str]] = {s: {} for s in (*SECTIONS, OPTIONS)}
    scalars: dict[str, str] = {}
    for text in assignments:
        key, value = split_assignment(text)
        head, _, rest = key.partition(".")
        if head in sections and rest:
            sections[head][rest] = value
        elif head in SCALARS and not rest:
            scalars[head] = value
        else:
            known = [f"{s}.<key>" for s in sections] + list(SCALARS)
            raise RecipeError(f"Unknown --set key {key!r}.{did_you_mean(head, list(sections) + list(SCALARS))} "
                              f"Keys look like {', '.join(known)}.")
    return sections, scalars


def load_recipe(path: str | Path, overrides: list[str] | None = None, source: str | None = None) -> Recipe:
    """Load, validate and override a recipe (from ``source`` if given, e.g. the copy in a run directory)."""
    module = load_module(path, source)
    names = vars(module)
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise RecipeError(f"Recipe {str(path)!r} is missing {', '.join(missing)}: a recipe defines data = dict(...) "
                          f"and def space(trial): ... (see recipes/digits.py).")
    if not callable(names["space"]):
        raise RecipeError(f"The recipe's space must be a function space(trial) that calls trial.suggest_*(), "
                          f"but got {type(names['space']).__name__}.")
    sections, scalars = group_overrides(overrides or [])
    built = {}
    for section, cls in SECTIONS.items():
        value = build_section(cls, names.get(section, {}), section)
        built[section] = apply_overrides(value, section, sections[section]) if sections[section] else value
    options = names.get(OPTIONS, {})
    if not isinstance(options, dict):
        raise RecipeError(f"The recipe's options must be a dict, but got {type(options).__name__}.")
    options = apply_option_overrides(options, sections[OPTIONS])
    values = {key: check_value(key, names.get(key, default), SCALARS[key])
              for key, default in (("seed", 0), ("name", Path(path).stem), ("warm_start", []))}
    for key, text in scalars.items():
        values[key] = parse_value(key, text, SCALARS[key])
    defaults = check_value("defaults", names.get("defaults", []), list[dict])
    warm_start = [str(Path(p).expanduser().resolve()) for p in values["warm_start"]]
    return Recipe(Path(path).resolve(), values["name"], values["seed"], built["data"], built["train"], built["budget"],
                  names["space"], source if source is not None else Path(path).read_text(), options,
                  warm_start, [dict(d) for d in defaults])
