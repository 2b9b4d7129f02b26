"""Typed configuration sections and the ``--set key=value`` parser.

Each recipe section (``data``, ``train``, ``budget``) is a dataclass; its type hints drive both the
validation of the recipe's own values and the parsing of command-line overrides.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from typing import Any, Literal, Union

from hpsearch.errors import RecipeError, did_you_mean

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def field_types(cls: type) -> dict[str, Any]:
    """The resolved type hint of every dataclass field of ``cls``."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def field_docs(cls: type) -> dict[str, str]:
    """Each field's docstring: the string literal right below the field in the class body."""
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return docs


def type_name(hint: Any) -> str:
    """A type hint as a reader writes it: ``int``, ``str | None``, ``'adamw' | 'sgd'``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin in (tuple, list):
        return f"{origin.__name__}[{', '.join(type_name(a) if a is not Ellipsis else '...' for a in args)}]"
    return "None" if hint is type(None) else _type_name(hint)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _is_optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType) and type(None) in typing.get_args(hint)


def check_value(key: str, value: Any, hint: Any) -> Any:
    """Return ``value`` (ints widened to float where a float is expected) or raise RecipeError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return check_value(key, value, arg)
            except RecipeError:
                continue
    elif origin is Literal:
        if value in args:
            return value
        raise RecipeError(f"{key} must be one of {list(args)}, but got {value=!r}.")
    elif origin in (tuple, list):
        if isinstance(value, (tuple, list)):
            item = args[0] if args else Any
            return origin(check_value(f"{key}[{i}]", v, item) for i, v in enumerate(value))
    elif hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif isinstance(hint, type) and isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise RecipeError(f"{key} must be of type {_type_name(hint)}, but got {value=!r}.")


def parse_value(key: str, text: str, hint: Any) -> Any:
    """Parse the text of ``--set key=text`` into a value of type ``hint``."""
    stripped = text.strip()
    if _is_optional(hint) and stripped.lower() in {"none", "null", ""}:
        return None
    inner = [a for a in typing.get_args(hint) if a is not type(None)] if _is_optional(hint) else [hint]
    target = inner[0] if len(inner) == 1 else hint
    literal_text = typing.get_origin(target) is Literal and all(isinstance(a, str) for a in typing.get_args(target))
    if target is str or literal_text:
        return check_value(key, stripped, target)
    if target is bool:
        if stripped.lower() in _TRUE | _FALSE:
            return stripped.lower() in _TRUE
        raise RecipeError(f"{key} must be true or false, but got value={text!r}.")
    try:
        value = ast.literal_eval(stripped)
        if typing.get_origin(target) in (tuple, list) and not isinstance(value, (tuple, list)):
            value = [value]  # --set key=0.5 for a list means [0.5]
    except (ValueError, SyntaxError):
        if typing.get_origin(target) in (tuple, list):
            value = [v.strip() for v in stripped.split(",") if v.strip()]
            value = [literal_or_text(v) for v in value]
        else:
            raise RecipeError(
                f"{key} must be of type {_type_name(hint)}, but got value={text!r}; "
                f"write it as a Python literal, e.g. --set {key}=0.1."
            ) from None
    return check_value(key, value, hint)


def literal_or_text(text: str) -> Any:
    """A Python literal if ``text`` is one (``0.5``, ``[1, 2]``), else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def check_keys(cls: type, values: dict[str, Any], section: str) -> dict[str, Any]:
    """``values`` with every key a field of dataclass ``cls`` and every value of its type (ints widened)."""
    if not isinstance(values, dict):
        raise RecipeError(f"The recipe's {section!r} must be a dict, but got {type(values).__name__}.")
    types_ = field_types(cls)
    checked = {}
    for key, value in values.items():
        if key not in types_:
            raise RecipeError(
                f"Unknown key {section}.{key!r}.{did_you_mean(key, types_)} "
                f"Known keys: {', '.join(sorted(types_))}."
            )
        checked[key] = check_value(f"{section}.{key}", value, types_[key])
    return checked


def build_section(cls: type, values: dict[str, Any], section: str) -> Any:
    """Instantiate dataclass ``cls`` from ``values``, rejecting unknown keys and wrong types."""
    return _validated(cls(**check_keys(cls, values, section)))


def apply_overrides(section_obj: Any, section: str, assignments: dict[str, str]) -> Any:
    """Return a copy of dataclass ``section_obj`` with textual overrides parsed and applied."""
    types_ = field_types(type(section_obj))
    changes = {}
    for key, text in assignments.items():
        if key not in types_:
            raise RecipeError(
                f"Unknown --set key {section}.{key!r}.{did_you_mean(key, types_)} "
                f"Known keys in {section!r}: {', '.join(sorted(types_))}."
            )
        changes[key] = parse_value(f"{section}.{key}", text, types_[key])
    return _validated(dataclasses.replace(section_obj, **changes))


def _validated(instance: Any) -> Any:
    """Run the section's own range checks, if it has any."""
    validate = getattr(instance, "validate", None)
    if validate is not None:
        validate()
    return instance


def parse_choices(text: str, allowed: tuple[str, ...], flag: str) -> list[str]:
    """Split a comma-separated command-line list and check every item is in ``allowed``."""
    from hpsearch.errors import HpsearchError

    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items or any(item not in allowed for item in items):
        raise HpsearchError(f"{flag} takes a comma-separated list of {', '.join(allowed)}, but got {text!r}.")
    return items


def split_assignment(text: str) -> tuple[str, str]:
    """Split ``'a.b=value'`` into ``('a.b', 'value')``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"--set takes KEY=VALUE (for example --set train.lr=0.01), but got {text!r}.")
    return key.strip(), value
