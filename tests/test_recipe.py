from __future__ import annotations

import traceback

import pytest

from hpsearch.errors import RecipeError
from hpsearch.recipe import load_recipe
from tests.conftest import MINIMAL_RECIPE, RECIPES, write_recipe


def test_digits_recipe_loads_with_defaults():
    recipe = load_recipe(RECIPES / "digits.py")
    assert recipe.name == "digits" and recipe.data.source == "digits"
    assert recipe.budget.grace_period >= 2
    assert recipe.train.flip is False


def test_overrides_reach_every_section(tmp_path):
    path = write_recipe(tmp_path, MINIMAL_RECIPE)
    recipe = load_recipe(path, ["data.image_size=12", "train.lr=0.5", "budget.num_samples=7", "seed=3",
                                "data.source=folder", "data.root=/x", "name=other"])
    assert (recipe.data.image_size, recipe.train.lr, recipe.budget.num_samples, recipe.seed) == (12, 0.5, 7, 3)
    assert recipe.data.root == "/x" and recipe.name == "other"
    assert recipe.resolved()["budget"]["num_samples"] == 7


@pytest.mark.parametrize("override, fragment", [
    ("budget.num_sample=3", "Did you mean 'num_samples'"),
    ("trian.lr=3", "Did you mean 'train'"),
    ("train.lr=fast", "train.lr must be of type float"),
    ("budget.num_samples=2.5", "budget.num_samples must be of type int"),
    ("budget.num_samples=0", "at least 1"),
    ("data.normalize=zscore", "must be one of"),
    ("data.image_size", "KEY=VALUE"),
])
def test_bad_overrides_name_the_problem(tmp_path, override, fragment):
    path = write_recipe(tmp_path, MINIMAL_RECIPE)
    with pytest.raises(RecipeError, match=fragment):
        load_recipe(path, [override])


def test_missing_names_are_listed(tmp_path):
    path = write_recipe(tmp_path, "data = dict(source='digits')\n")
    with pytest.raises(RecipeError, match="missing space"):
        load_recipe(path)


def test_syntax_error_names_file_and_line(tmp_path):
    path = write_recipe(tmp_path, "data = dict(\nspace = 3\n")
    with pytest.raises(RecipeError, match=r"Syntax error in recipe .*recipe.py, line"):
        load_recipe(path)


def test_wrong_type_in_recipe_body(tmp_path):
    path = write_recipe(tmp_path, MINIMAL_RECIPE.replace("num_samples=2", "num_samples='two'"))
    with pytest.raises(RecipeError, match="budget.num_samples must be of type int, but got value='two'"):
        load_recipe(path)


def test_exception_in_recipe_points_into_the_recipe(tmp_path):
    path = write_recipe(tmp_path, "x = 1\ny = 1 / 0\n")
    with pytest.raises(ZeroDivisionError) as info:
        load_recipe(path)
    frames = traceback.extract_tb(info.value.__traceback__)
    assert frames[-1].filename == str(path.resolve()) and frames[-1].lineno == 2


def test_missing_file_and_wrong_suffix(tmp_path):
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "nope.py")
    other = tmp_path / "recipe.txt"
    other.write_text("x")
    with pytest.raises(RecipeError, match="ends in .py|ending in .py"):
        load_recipe(other)
