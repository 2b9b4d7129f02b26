"""Recipes: plain Python files that define ``data``, ``train``, ``space``, ``budget``, ``options`` and ``seed``.

A recipe is trusted code (it is executed); it should only define names, with no side effects. It is compiled
under its own file name, so tracebacks point into the recipe file itself. A recipe may extend another with
``base = "other.py"`` (see ``hpsearch.recipe_source``), and ``Recipe(...)`` builds one in Python.
"""

from __future__ import annotations

import dataclasses
import inspect
import linecache
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from hpsearch.config import (
    apply_overrides,
    build_section,
    check_keys,
    check_value,
    literal_or_text,
    parse_value,
    split_assignment,
)
from hpsearch.data import DataConfig
from hpsearch.errors import RecipeError, did_you_mean
from hpsearch.options import is_declared, override_declared
from hpsearch.recipe_source import (
    Part,
    assigned_names,
    is_bundle,
    join_bundle,
    recipe_parts,
    render_recipe,
    split_bundle,
    syntax_error,
)
from hpsearch.search.budget import BudgetConfig
from hpsearch.training import TrialConfig

SECTIONS: dict[str, type] = {"data": DataConfig, "train": TrialConfig, "budget": BudgetConfig}
SCALARS: dict[str, Any] = {"seed": int, "name": str, "warm_start": list[str]}
REQUIRED = ("data", "space")
OPTIONS = "options"  # the values space(trial, options) reads: Range(...), Choice(...) or free-form values
MERGED = (*SECTIONS, OPTIONS)  # the dicts a recipe with a base merges into the base's


@dataclass(frozen=True, init=False, repr=False)
class Recipe:
    """A loaded, validated recipe with its ``--set`` overrides applied.

    ``Recipe(data=..., space=..., train=..., budget=..., options=..., name=..., seed=..., base=...)`` builds one
    in Python with the same sections as a file (``base``: a recipe file to extend, its sections merged key by
    key). It is written out as a recipe text (``source``), which the run directory keeps and Ray's workers run,
    so ``space`` must be a ``def space(trial, options)`` whose outside names are plain values or modules.
    ``Recipe.load(path)`` reads a file.
    """

    path: Path
    name: str
    seed: int
    data: DataConfig
    train: TrialConfig
    budget: BudgetConfig
    space: Callable[..., dict[str, Any] | None]
    source: str
    options: dict[str, Any]
    overrides: tuple[str, ...]
    warm_start: list[str]  # earlier run directories (absolute)
    defaults: list[dict[str, Any]]  # configurations tried first

    def __init__(self, data: dict[str, Any] | DataConfig | None = None, space: Callable | None = None, *,
                 name: str = "recipe", seed: int | None = None, train: dict[str, Any] | TrialConfig | None = None,
                 budget: dict[str, Any] | BudgetConfig | None = None, options: dict[str, Any] | None = None,
                 base: str | Path | None = None, warm_start: str | Path | Sequence[str | Path] | None = None,
                 defaults: Sequence[dict[str, Any]] | None = None):
        sections = {"data": data, "train": train, "budget": budget, OPTIONS: options}
        sections = {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in sections.items()}
        base_path = str(Path(base).expanduser().resolve()) if base is not None else None
        if isinstance(warm_start, (str, Path)):
            warm_start = [warm_start]
        scalars = {"seed": seed, "warm_start": None if warm_start is None else
                   [str(Path(p).expanduser().resolve()) for p in warm_start],
                   "defaults": None if defaults is None else [dict(d) for d in defaults]}
        text = render_recipe(name=name, seed=None, sections=sections, space=space, base=base_path,
                             header="# A recipe built in Python with hpsearch.Recipe(...).",
                             scalars={k: v for k, v in scalars.items() if v is not None})
        copy_fields(self, load_recipe(python_recipe_path(name), source=text))

    @classmethod
    def load(cls, path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
        """The recipe file at ``path`` (and the files it extends), with ``--set``-style ``overrides``."""
        return load_recipe(path, list(overrides))

    def with_overrides(self, overrides: Sequence[str]) -> Recipe:
        """This recipe with more ``section.key=value`` overrides (the same text as ``--set``)."""
        if not overrides:
            return self
        return load_recipe(self.path, [*self.overrides, *overrides], source=self.source)

    @property
    def files(self) -> list[Path]:
        """The files this recipe is made of, bases first."""
        return [part.path for part in split_bundle(self.source)] if is_bundle(self.source) else [self.path]

    def resolved(self) -> dict[str, Any]:
        """Everything but the space function, as plain data (for ``config.json``)."""
        options = {k: repr(v) if is_declared(v) else v for k, v in self.options.items()}
        return {"recipe": str(self.path), "name": self.name, "seed": self.seed,
                **{s: dataclasses.asdict(getattr(self, s)) for s in SECTIONS}, OPTIONS: options,
                "warm_start": self.warm_start, "defaults": self.defaults}

    def __repr__(self) -> str:
        extra = f", overrides={list(self.overrides)}" if self.overrides else ""
        return f"Recipe(name={self.name!r}, path={str(self.path)!r}{extra})"


def copy_fields(target: Recipe, source: Recipe) -> Recipe:
    for f in dataclasses.fields(Recipe):
        object.__setattr__(target, f.name, getattr(source, f.name))
    return target


def python_recipe_path(name: str) -> Path:
    """Where a recipe built in Python says it lives: a file named after it in the working folder (never read;
    tracebacks show its text all the same)."""
    return Path.cwd() / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name) or 'recipe'}.py"


def module_name(path: Path) -> str:
    return "hpsearch_recipe_" + re.sub(r"\W", "_", path.stem)


def load_module(path: str | Path, source: str | None = None) -> ModuleType:
    """Execute the recipe (the file and its bases, or ``source`` under its name) as a module; tracebacks point
    into the files. The one way a recipe runs, in the driver and in every Ray worker: a worker that already ran
    the same text reuses that module (models it registered with timm stay registered once).
    """
    path = Path(path).expanduser().resolve()
    parts = recipe_parts(path, source)
    text = join_bundle(parts)
    name = module_name(path)
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__recipe_source__", None) == text:
        return loaded
    module = ModuleType(name)
    module.__file__ = str(path)
    module.__recipe_source__ = text
    sys.modules[name] = module  # lets pickle find the recipe's functions by reference
    try:
        run_parts(module.__dict__, parts)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def run_parts(namespace: dict[str, Any], parts: list[Part]) -> None:
    """Run each file in turn in one namespace; a file's section dicts are checked (errors name that file) and
    merged into those of the files before it. ``name`` is never inherited: it defaults to the last file's name."""
    for index, part in enumerate(parts):
        assigned = assigned_names(part.text, part.path)
        before = {s: namespace.get(s) for s in MERGED}
        if on_disk(part):  # tracebacks quote the text that ran: the file's, or (a file of that name differs) its own
            linecache.cache.pop(str(part.path), None)
        else:
            linecache.cache[str(part.path)] = (len(part.text), None, part.text.splitlines(True), str(part.path))
        try:
            exec(compile(part.text, str(part.path), "exec"), namespace)  # noqa: S102  recipes are trusted code
        except SyntaxError as err:
            raise syntax_error(err, part.path) from None
        where = f" (in {part.path})" if len(parts) > 1 else ""
        for section, cls in SECTIONS.items():
            if section in assigned:
                try:
                    check_keys(cls, namespace[section], section)
                except RecipeError as err:
                    raise RecipeError(f"{err}{where}") from None
        if index == 0:
            continue
        replaces_options = "space" in assigned and OPTIONS in assigned  # a new space brings its own options
        for section in MERGED:
            own, earlier = namespace.get(section), before[section]
            if section in assigned and isinstance(own, dict) and isinstance(earlier, dict):
                if not (section == OPTIONS and replaces_options):
                    namespace[section] = {**earlier, **own}
        if "name" not in assigned:
            namespace.pop("name", None)


def on_disk(part: Part) -> bool:
    """Whether ``part``'s file holds exactly the text that runs (not so for a recipe built in Python next to a file
    of its name, or for a resumed run whose recipe file was edited since)."""
    try:
        return part.path.read_text() == part.text
    except (OSError, UnicodeDecodeError):
        return False


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
        if is_declared(options[key]):
            result[key] = override_declared(f"{OPTIONS}.{key}", options[key], text)
            continue
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


def check_space(space: Any, strict: bool) -> None:
    """``space`` is a function ``space(trial, options)``; the older ``space(trial)`` only runs from text written
    before (a run directory's copy), never from a recipe file being started."""
    if not callable(space):
        raise RecipeError(f"The recipe's space must be a function space(trial, options) that calls "
                          f"trial.suggest_*(), but got {type(space).__name__}.")
    try:
        inspect.signature(space).bind(None, None)
    except TypeError:
        if strict:
            where = getattr(getattr(space, "__code__", None), "co_filename", "the recipe")
            raise RecipeError(f"space{inspect.signature(space)} in {where} must also take the recipe's options: "
                              f"write def space(trial, options): (options is {{}} when the recipe has none).") from None


def load_recipe(path: str | Path, overrides: list[str] | None = None, source: str | None = None) -> Recipe:
    """Load, validate and override a recipe (from ``source`` if given, e.g. the copy in a run directory)."""
    path = Path(path).expanduser().resolve()
    module = load_module(path, source)
    names = vars(module)
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise RecipeError(f"Recipe {str(path)!r} is missing {', '.join(missing)}: a recipe defines data = dict(...) "
                          f"and def space(trial, options): ... (see recipes/digits.py).")
    check_space(names["space"], strict=source is None)
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
              for key, default in (("seed", 0), ("name", path.stem), ("warm_start", []))}
    for key, text in scalars.items():
        values[key] = parse_value(key, text, SCALARS[key])
    defaults = check_value("defaults", names.get("defaults", []), list[dict])
    recipe = object.__new__(Recipe)
    fields = {"path": path, "name": values["name"], "seed": values["seed"], **built, "space": names["space"],
              "source": module.__recipe_source__, "options": options, "overrides": tuple(overrides or ()),
              "warm_start": [str(Path(p).expanduser().resolve()) for p in values["warm_start"]],
              "defaults": [dict(d) for d in defaults]}
    for key, value in fields.items():
        object.__setattr__(recipe, key, value)
    return recipe
