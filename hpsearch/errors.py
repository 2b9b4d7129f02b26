"""Errors that end a command with one readable message instead of a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HpsearchError(Exception):
    """A problem the user can fix; the CLI prints the message and exits non-zero."""

    exit_code = 2


class RecipeError(HpsearchError):
    """The recipe file or a ``--set`` override is wrong."""


class DataError(HpsearchError):
    """The dataset is missing, empty or unusable."""


class SearchError(HpsearchError):
    """The search could not run or produced no usable trial."""

    exit_code = 1


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """A ' Did you mean ...?' suffix listing the closest choices, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.6)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
