"""Recipe text: bundles of a recipe and its bases, and sections written out as a recipe file."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpsearch.errors import RecipeError
from hpsearch.options import Choice, Range
from hpsearch.recipe_source import (
    Part,
    assigned_names,
    is_bundle,
    join_bundle,
    literal,
    render_recipe,
    split_bundle,
)


def test_a_bundle_splits_back_into_its_parts():
    parts = [Part(Path("/r/base.py"), "a = 1\n"), Part(Path("/r/mid.py"), "b = 2"),
             Part(Path("/r/child.py"), "c = 3\n")]
    text = join_bundle(parts)
    assert is_bundle(text) and [p.path for p in split_bundle(text)] == [p.path for p in parts]
    assert [p.text for p in split_bundle(text)] == ["a = 1\n", "b = 2\n", "c = 3\n"]
    assert join_bundle(split_bundle(text)) == text
    assert join_bundle([Part(Path("/r/solo.py"), "x = 1\n")]) == "x = 1\n"  # a recipe without base is itself


def test_assigned_names_see_every_top_level_binding():
    text = "import os\nfrom a.b import c as d\nx = y = 1\nz: int = 2\nw += 1\ndef space(t, o): pass\nclass K: pass\n" \
           "(p, *q) = 1, 2\nfor i in []: pass\nm['k'] = 3\nm.a = 1\n"
    assert assigned_names(text, Path("r.py")) == {"os", "d", "x", "y", "z", "w", "space", "K", "p", "q", "i"}


def test_literals_round_trip_and_the_rest_is_refused():
    assert literal((1, "a", None), "k") == "(1, 'a', None)" and literal(("x",), "k") == "('x',)"
    assert literal(Path("/data"), "k") == "'/data'" and literal(Range(1e-3, 1e-2, log=True), "k").startswith("Range(")
    assert literal(Choice("a"), "k") == "Choice('a')"
    with pytest.raises(RecipeError, match="data.root = <object.*cannot be written into a recipe"):
        literal(object(), "data.root")
    assert eval(literal(float("1e-5"), "k")) == 1e-5  # noqa: S307


def test_a_rendered_recipe_is_valid_python_with_every_section():
    text = render_recipe(name="r", seed=3, sections={"data": {"source": "digits"}, "train": None, "budget": {},
                                                     "options": {"lr": Range(0.1, 1.0)}},
                         space="def space(trial, options):\n    pass\n", base="/x/base.py", header="# hello")
    namespace: dict = {}
    exec(compile(text, "r.py", "exec"), namespace)  # noqa: S102
    assert text.startswith("# hello\n") and namespace["base"] == "/x/base.py" and namespace["seed"] == 3
    assert namespace["data"] == {"source": "digits"} and namespace["budget"] == {} and "train" not in namespace
    assert namespace["options"]["lr"] == Range(0.1, 1.0) and callable(namespace["space"])
