"""A recipe's text: the files it is made of (``base = "other.py"`` chains), and recipes written out as text.

A recipe that extends another (``base = "flowers.py"``, relative to its own folder) runs as a **bundle**: the
base's text, then its own, each compiled under its own file name (tracebacks point into the right file).
The bundle is one text, so the run directory's ``recipe.py``, Ray's workers and a resume all run exactly the
files the search started with, even after the base file changes on disk.

``render_recipe`` writes sections and a ``space`` function as a recipe file: ``hpsearch init`` and
``hpsearch.Recipe(...)`` built in Python both become such a text, and run like a file.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpsearch.errors import RecipeError
from hpsearch.options import is_declared

BUNDLE_HEADER = "# hpsearch recipe bundle:"
PART_MARK = re.compile(r"^# ---- hpsearch part: (.+) ----$", re.MULTILINE)


@dataclass(frozen=True)
class Part:
    """One file of a recipe: its path and its text."""

    path: Path
    text: str


def syntax_error(err: SyntaxError, path: Path | str) -> RecipeError:
    return RecipeError(f"Syntax error in recipe {err.filename or path}, line {err.lineno}: {err.msg}.\n"
                       f"    {(err.text or '').rstrip()}")


def parse(text: str, path: Path) -> ast.Module:
    try:
        return ast.parse(text, filename=str(path))
    except SyntaxError as err:
        raise syntax_error(err, path) from None


def bound_names(target: ast.AST | None) -> set[str]:
    """The names an assignment target binds (``x``, ``x, y``), not those it only mutates (``x["k"]``, ``x.a``)."""
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, (ast.Tuple, ast.List)):
        return set().union(*(bound_names(t) for t in target.elts))
    return bound_names(target.value) if isinstance(target, ast.Starred) else set()


def assigned_names(text: str, path: Path) -> set[str]:
    """The names a recipe file binds at its top level (assignments, functions, classes, imports)."""
    names: set[str] = set()
    for node in parse(text, path).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            names |= bound_names(target)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def base_of(text: str, path: Path) -> str | None:
    """The ``base = "file.py"`` a recipe declares at its top level, if any."""
    for node in parse(text, path).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "base" for t in node.targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
            raise RecipeError(f"{path}, line {node.lineno}: base must be a string, the path of the recipe this one "
                              f"extends (relative to its folder), e.g. base = \"flowers.py\".")
    return None


def read_recipe_file(path: Path) -> str:
    if not path.is_file():
        raise RecipeError(f"Recipe file {str(path)!r} does not exist; pass the path to a .py recipe, "
                          f"e.g. recipes/digits.py.")
    if path.suffix != ".py":
        raise RecipeError(f"A recipe is a Python file ending in .py, but got {str(path)!r}.")
    return path.read_text()


def is_bundle(text: str) -> bool:
    return text.startswith(BUNDLE_HEADER)


def split_bundle(text: str) -> list[Part]:
    marks = list(PART_MARK.finditer(text))
    ends = [m.start() for m in marks[1:]] + [len(text)]
    return [Part(Path(m.group(1)), text[m.end() + 1:end]) for m, end in zip(marks, ends, strict=True)]


def join_bundle(parts: list[Part]) -> str:
    """One text for the whole recipe; a recipe without a base is its own text."""
    if len(parts) == 1:
        return parts[0].text
    out = [f"{BUNDLE_HEADER} {parts[-1].path} and the recipe(s) it extends, as they ran.\n",
           "# Each part runs after the ones above it, in the same namespace; its data, train, budget and options\n",
           "# dicts are merged into theirs. Edit the original files, not this copy.\n"]
    for part in parts:
        out.append(f"# ---- hpsearch part: {part.path} ----\n")
        out.append(part.text if part.text.endswith("\n") else part.text + "\n")
    return "".join(out)


def recipe_parts(path: Path, source: str | None = None, chain: tuple[Path, ...] = ()) -> list[Part]:
    """Every file of the recipe at ``path`` (its text ``source`` if given), bases first."""
    text = read_recipe_file(path) if source is None else source
    if is_bundle(text):
        return split_bundle(text)
    base = base_of(text, path)
    if base is None:
        return [Part(path, text)]
    base_path = (path.parent / Path(base).expanduser()).resolve()
    if base_path in (*chain, path):
        raise RecipeError(f"{path}: base = {base!r} makes a loop ({' -> '.join(str(p) for p in (*chain, path))} -> "
                          f"{base_path}); a recipe cannot extend itself.")
    if not base_path.is_file():
        raise RecipeError(f"{path}: base = {base!r} does not exist (looked for {base_path}); base is relative to "
                          f"the recipe's own folder.")
    return [*recipe_parts(base_path, None, (*chain, path)), Part(path, text)]


# --- recipes written out as text ------------------------------------------------------------------------------------
def literal(value: Any, where: str) -> str:
    """``value`` as Python source that evaluates back to it (a literal, a Range or a Choice)."""
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, (list, tuple)) and not is_declared(value):
        inner = ", ".join(literal(v, f"{where}[{i}]") for i, v in enumerate(value))
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    text = repr(value)
    if is_declared(value):
        return text
    try:
        ok = ast.literal_eval(text) == value
    except (ValueError, SyntaxError):
        ok = False
    if not ok:
        raise RecipeError(f"{where} = {text} cannot be written into a recipe; use plain values (numbers, strings, "
                          f"lists, tuples, dicts, None), Range(...) or Choice(...).")
    return text


def render_section(name: str, values: dict[str, Any], comments: dict[str, str] | None = None) -> str:
    """``name = dict(\\n    key=value,  # comment\\n)``."""
    if not values:
        return f"{name} = dict()\n"
    lines = [f"{name} = dict("]
    for key, value in values.items():
        if not key.isidentifier():
            raise RecipeError(f"{name} key {key!r} must be a Python identifier.")
        comment = (comments or {}).get(key)
        lines.append(f"    {key}={literal(value, f'{name}.{key}')},{f'  # {comment}' if comment else ''}")
    return "\n".join(lines) + "\n)\n"


def space_source(space: Callable) -> str:
    """The text of a ``space(trial, options)`` function defined in Python (a notebook cell or a module), with the
    names it reads from outside itself (literals, Range/Choice, modules, importable functions) written before it."""
    if not isinstance(space, types.FunctionType) or space.__name__ == "<lambda>":
        raise RecipeError(f"space must be a function defined with def space(trial, options): ..., but got {space!r}.")
    try:
        inspect.signature(space).bind(None, None)
    except TypeError:
        raise RecipeError(f"space {space.__name__}{inspect.signature(space)} must take (trial, options): write "
                          f"def {space.__name__}(trial, options): ...") from None
    try:
        body = textwrap.dedent(inspect.getsource(space))
    except (OSError, TypeError):
        raise RecipeError(f"The source of {space.__name__} cannot be found (defined in an interactive shell?); "
                          f"define it in a notebook cell, a module or a recipe file.") from None
    outside = inspect.getclosurevars(space)
    lines = [outside_name(name, value) for name, value in {**outside.globals, **outside.nonlocals}.items()]
    alias = "" if space.__name__ == "space" else f"\nspace = {space.__name__}\n"
    return "".join(line + "\n" for line in lines) + ("\n" if lines else "") + body + alias


def outside_name(name: str, value: Any) -> str:
    """One line that defines ``name`` as ``value`` in a recipe file, or a RecipeError saying how to avoid it."""
    if isinstance(value, types.ModuleType):
        return f"import {value.__name__}" + ("" if value.__name__ == name else f" as {name}")
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", "")
    if callable(value) and module and module != "__main__" and qualname.isidentifier() and not is_declared(value):
        if not module.startswith("hpsearch_recipe_"):
            return f"from {module} import {qualname}" + ("" if qualname == name else f" as {name}")
    try:
        return f"{name} = {literal(value, name)}"
    except RecipeError:
        raise RecipeError(f"space reads {name!r} ({type(value).__name__}), which cannot be written into a recipe; "
                          f"define it inside space, or pass it in the recipe's options.") from None


def render_recipe(*, name: str, seed: int | None, sections: dict[str, dict[str, Any] | None],
                  space: Callable | str | None,
                  base: str | None = None, header: str = "", scalars: dict[str, Any] | None = None) -> str:
    """A recipe file's text: ``header`` (comment lines), the scalars, each section given, and ``space``."""
    parts = [header.rstrip() + "\n\n" if header else ""]
    parts.append("from hpsearch import Choice, Range  # noqa: F401\n\n")
    if base is not None:
        parts.append(f"base = {base!r}\n")
    parts.append(f"name = {name!r}\n" + ("" if seed is None else f"seed = {int(seed)!r}\n"))
    parts.extend(f"{key} = {literal(value, key)}\n" for key, value in (scalars or {}).items())
    parts.append("\n")
    for section, values in sections.items():
        if values is not None:
            parts.append(render_section(section, dict(values)) + "\n")
    if space is not None:
        parts.append("\n" + (space if isinstance(space, str) else space_source(space)).strip("\n") + "\n")
    return "".join(parts).rstrip("\n") + "\n"
