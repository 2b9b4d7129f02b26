"""The recipe-field reference: generated from the dataclasses, in `tune --help` and in the README."""

from __future__ import annotations

import dataclasses

import pytest

from hpsearch import reference
from hpsearch.config import field_docs
from hpsearch.recipe import SECTIONS
from tests.conftest import ROOT


@pytest.mark.parametrize("section", list(SECTIONS))
def test_every_field_has_a_docstring(section):
    cls = SECTIONS[section]
    docs = field_docs(cls)
    missing = [f.name for f in dataclasses.fields(cls) if not docs.get(f.name)]
    assert not missing, f"{cls.__name__} fields without a docstring below them: {missing}"


def test_the_readme_section_is_current():
    assert reference.main(["--check", str(ROOT / "README.md")]) == 0, \
        "run: python -m hpsearch.reference README.md"


def test_a_stale_section_is_caught_and_rewritten(tmp_path, capsys):
    stale = tmp_path / "doc.md"
    stale.write_text(f"intro\n{reference.START}\n| `image_size` | old |\n{reference.END}\nrest\n")
    assert reference.main(["--check", str(stale)]) == 1 and "stale" in capsys.readouterr().err
    assert reference.main([str(stale)]) == 0
    text = stale.read_text()
    assert reference.main(["--check", str(stale)]) == 0
    assert text.startswith("intro\n") and text.endswith("rest\n") and "| `time_budget_s` |" in text


def test_tune_help_lists_every_field():
    from hpsearch.cli import build_parser

    parser = build_parser()
    tune = parser._subparsers._group_actions[0].choices["tune"]
    text = tune.format_help()
    for section, cls in SECTIONS.items():
        for field in dataclasses.fields(cls):
            assert f"{section}.{field.name} (" in text, f"{section}.{field.name}"
