"""A recipe's ``options``: ranges and choices declared as such, so the two meanings of a list are explicit.

``Range(lo, hi, log=...)`` is an interval (``suggest_float``, or ``suggest_int`` when both ends are ints);
``Choice(a, b, ...)`` is a set of values (``suggest_categorical``). ``--set options.key=...`` keeps the kind
of the recipe's value: ``--set options.lr=1e-3,1e-2`` narrows a Range, ``--set options.backbones=a,b`` a
Choice, and ``--set "options.lr=Range(1e-3, 1e-2, log=True)"`` states either kind in full.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from hpsearch.errors import RecipeError

Number = int | float


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value it holds (``np.int64(3)`` -> ``3``), so it checks, suggests and renders
    as recipe text like one written by hand; anything else unchanged."""
    item = getattr(value, "item", None)
    return item() if callable(item) and type(value).__module__ == "numpy" and getattr(value, "ndim", 1) == 0 else value


@dataclass(frozen=True)
class Range:
    """The interval [low, high] of a number to search, on a log scale with ``log=True``."""

    low: Number
    high: Number
    log: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "low", _plain(self.low))
        object.__setattr__(self, "high", _plain(self.high))
        if not (_is_number(self.low) and _is_number(self.high)):
            raise RecipeError(f"Range takes two numbers, but got Range({self.low!r}, {self.high!r}).")
        if self.low > self.high:
            raise RecipeError(f"Range needs low <= high, but got Range({self.low!r}, {self.high!r}); swap them.")
        if self.log and self.low <= 0:
            raise RecipeError(f"Range(..., log=True) needs low > 0, but got low={self.low!r}.")

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    def suggest(self, trial: Any, name: str) -> Number:
        """``trial.suggest_int`` (both ends ints) or ``trial.suggest_float`` over this interval."""
        if self.integer:
            return trial.suggest_int(name, self.low, self.high, log=self.log)
        return trial.suggest_float(name, float(self.low), float(self.high), log=self.log)

    def __iter__(self):
        """``*options["lr"]`` unpacks to ``low, high``, as a two-item list did."""
        return iter((self.low, self.high))

    def __repr__(self) -> str:
        return f"Range({self.low!r}, {self.high!r}{', log=True' if self.log else ''})"


class Choice(tuple):
    """The values to choose from (``trial.suggest_categorical``); a tuple, so ``suggest_categorical(name,
    options["backbones"])`` also works."""

    def __new__(cls, *values: Any) -> Choice:
        if not values:
            raise RecipeError("Choice needs at least one value, e.g. Choice('resnet18', 'resnet10t').")
        return super().__new__(cls, tuple(_plain(v) for v in values))

    def __getnewargs__(self) -> tuple[Any, ...]:
        return tuple(self)

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, list(self))

    def __repr__(self) -> str:
        return f"Choice({', '.join(repr(v) for v in self)})"


def is_declared(value: Any) -> bool:
    """A Range or a Choice (rather than a free-form value)."""
    return isinstance(value, (Range, Choice))


def parse_declared(text: str) -> Range | Choice | None:
    """``Range(...)`` or ``Choice(...)`` written as text with literal arguments, or None if it is neither."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        return None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("Range", "Choice")):
        return None
    try:
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        return Range(*args, **kwargs) if node.func.id == "Range" else Choice(*args, **kwargs)
    except (ValueError, TypeError, SyntaxError) as err:
        raise RecipeError(f"{text.strip()!r} is not a valid {node.func.id}: write its arguments as literals, e.g. "
                          f"Range(1e-4, 1e-2, log=True) or Choice('a', 'b') ({err}).") from None


def _item(text: str, like: Any, key: str) -> Any:
    """``text`` parsed as a value of the type of ``like`` (a number, a string, a bool)."""
    text = text.strip()
    if isinstance(like, str):
        try:  # 'resnet18' (as a list's repr writes it) is resnet18
            quoted = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        return quoted if isinstance(quoted, str) else text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise RecipeError(f"--set {key}: {text!r} is not a {type(like).__name__}.") from None
    if isinstance(like, bool) or not _is_number(like):
        return value
    if not _is_number(value) or (isinstance(like, int) and not isinstance(value, int)):
        raise RecipeError(f"--set {key}: {text!r} must be a{'n int' if isinstance(like, int) else ' number'}, "
                          f"like the recipe's {like!r}.")
    return float(value) if isinstance(like, float) else value


def override_declared(key: str, current: Range | Choice, text: str) -> Range | Choice:
    """The new value of an option declared as a Range or Choice, from the text of ``--set key=text``."""
    declared = parse_declared(text)
    if declared is not None:
        return declared
    parts = [p for p in text.strip().strip("[]()").split(",") if p.strip()]
    if isinstance(current, Choice):
        return Choice(*(_item(p, current[0], key) for p in parts))
    if len(parts) not in (1, 2):
        raise RecipeError(f"--set {key} takes LOW,HIGH (or one value) for a {current!r}, but got {text!r}.")
    low, high = (_item(p, current.low if current.integer else 0.0, key) for p in (parts[0], parts[-1]))
    if not current.integer:
        low, high = float(low), float(high)  # a float range stays one, even when written as 1,2
    return Range(low, high, log=current.log)
