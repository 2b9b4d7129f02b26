from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpsearch.config import apply_overrides, build_section, check_value, parse_value, split_assignment
from hpsearch.errors import RecipeError


@dataclass(frozen=True)
class Section:
    count: int = 1
    rate: float = 0.1
    name: str = "x"
    flag: bool = False
    path: str | None = None
    size: int | None = None
    mode: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] = (1, 2)


def test_parse_value_by_type():
    assert parse_value("k", "3", int) == 3
    assert parse_value("k", "3", float) == 3.0 and isinstance(parse_value("k", "3", float), float)
    assert parse_value("k", "1e-3", float) == 1e-3
    assert parse_value("k", "file:///tmp/a.tgz", str) == "file:///tmp/a.tgz"
    assert parse_value("k", "True", bool) is True and parse_value("k", "no", bool) is False
    assert parse_value("k", "none", str | None) is None
    assert parse_value("k", "/data", str | None) == "/data"
    assert parse_value("k", "4", int | None) == 4
    assert parse_value("k", "b", Literal["a", "b"]) == "b"
    assert parse_value("k", "3,4", tuple[int, ...]) == (3, 4)
    assert parse_value("k", "(3, 4)", tuple[int, ...]) == (3, 4)


@pytest.mark.parametrize("text, hint, fragment", [
    ("abc", int, "must be of type int"),
    ("1.5", int, "must be of type int"),
    ("True", int, "must be of type int"),
    ("maybe", bool, "must be true or false"),
    ("c", Literal["a", "b"], "must be one of"),
])
def test_parse_value_rejects_with_the_bad_value(text, hint, fragment):
    with pytest.raises(RecipeError, match=fragment) as info:
        parse_value("train.x", text, hint)
    assert "train.x" in str(info.value) and text in str(info.value)


def test_check_value_widens_int_to_float_but_not_bool_to_int():
    assert check_value("k", 2, float) == 2.0
    with pytest.raises(RecipeError):
        check_value("k", True, int)


def test_build_section_unknown_key_suggests_the_closest():
    with pytest.raises(RecipeError, match=r"Unknown key section.'cont'.*Did you mean 'count'"):
        build_section(Section, {"cont": 2}, "section")


def test_apply_overrides_types_and_unknown_keys():
    section = apply_overrides(Section(), "s", {"count": "5", "rate": "0.5", "path": "/a", "mode": "b"})
    assert (section.count, section.rate, section.path, section.mode) == (5, 0.5, "/a", "b")
    with pytest.raises(RecipeError, match="Unknown --set key s.'nmae'.*'name'"):
        apply_overrides(Section(), "s", {"nmae": "y"})


@pytest.mark.parametrize("text", ["novalue", "=3", ""])
def test_split_assignment_requires_key_and_equals(text):
    with pytest.raises(RecipeError, match="KEY=VALUE"):
        split_assignment(text)


@given(st.integers(min_value=-10**12, max_value=10**12))
def test_int_round_trip(value):
    assert parse_value("k", str(value), int) == value
    assert parse_value("k", str(value), float) == float(value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_round_trip(value):
    assert parse_value("k", repr(value), float) == value


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1).filter(lambda s: s.strip() == s and s))
def test_strings_are_taken_verbatim(value):
    assert parse_value("k", value, str) == value


@given(st.text(min_size=1, max_size=20).filter(lambda s: "=" not in s and s.strip()), st.text(max_size=20))
def test_split_assignment_splits_on_the_first_equals(key, value):
    assert split_assignment(f"{key}={value}") == (key.strip(), value)


@given(st.text(max_size=12))
def test_int_parser_never_crashes_with_an_unexpected_error(text):
    try:
        result = parse_value("k", text, int)
    except RecipeError:
        return
    assert isinstance(result, int) and not isinstance(result, bool)
