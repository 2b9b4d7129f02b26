"""argparse pieces of the command line: a parser whose epilog is built only for ``--help``, durations such as
``30m``, and comma-separated lists checked against their choices."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence


class Parser(argparse.ArgumentParser):
    """argparse, with an epilog built only when the help is shown (the recipe reference loads torch)."""

    def __init__(self, *args, epilog_factory: Callable[[], str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.epilog_factory = epilog_factory

    def format_help(self) -> str:
        if self.epilog_factory is not None:
            self.epilog = self.epilog_factory()
        return super().format_help()


def duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``30m``, ``1.5h`` or ``1h30m``."""
    match = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or match is None:
        raise argparse.ArgumentTypeError(f"expected a duration such as 600, 90s, 30m, 1.5h or 1h30m, got {text!r}")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = 3600 * hours + 60 * minutes + seconds
    if total <= 0:
        raise argparse.ArgumentTypeError(f"a time budget must be positive, got {text!r}")
    return total


def comma_choices(allowed: Callable[[], Sequence[str]], name: str) -> Callable[[str], list[str]]:
    """An argparse type for a comma-separated subset of ``allowed()`` (loaded when the flag is parsed)."""
    def parse(text: str) -> list[str]:
        choices = tuple(allowed())
        items = [item.strip() for item in text.split(",") if item.strip()]
        bad = [item for item in items if item not in choices]
        if not items or bad:
            shown = ", ".join(repr(item) for item in bad) or repr(text)
            raise argparse.ArgumentTypeError(f"invalid choice{'s' if len(bad) > 1 else ''} {shown} (choose from "
                                             f"{', '.join(choices)}, comma-separated)")
        return items

    parse.__name__ = name
    return parse
