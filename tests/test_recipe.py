from __future__ import annotations

import traceback

import pytest

from hpsearch.errors import RecipeError
from hpsearch.recipe import load_recipe
from tests.conftest import MINIMAL_RECIPE, RECIPES, write_recipe


def test_digits_recipe_loads_with_defaults():
    recipe = load_recipe(RECIPES / "digits.py")
    assert recipe.name == "digits" and recipe.data.source == "digits"
    assert recipe.budget.grace_epochs >= 2
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


# --- one space signature -------------------------------------------------------------------------------------------
def test_a_one_argument_space_in_a_recipe_file_says_how_to_convert_it(tmp_path):
    path = write_recipe(tmp_path, MINIMAL_RECIPE.replace("def space(trial, options):", "def space(trial):"))
    with pytest.raises(RecipeError, match=r"must also take the recipe's options: write def space\(trial, options\)"):
        load_recipe(path)


def test_a_run_directory_copy_with_a_one_argument_space_still_loads(tmp_path):
    """Runs written before the options argument existed still resume."""
    text = MINIMAL_RECIPE.replace("def space(trial, options):", "def space(trial):")
    recipe = load_recipe(tmp_path / "recipe.py", source=text)
    import optuna

    from hpsearch.search.space import TrialSpace

    trial = optuna.trial.FixedTrial({"lr": 0.005}, number=2)
    constants = TrialSpace(recipe)(trial)
    assert trial.params == {"lr": 0.005} and constants["seed"] == 2


# --- recipes that extend others ------------------------------------------------------------------------------------
BASE = '''
HELPER = {"lr": (1e-3, 1e-2)}
data = dict(source="digits", image_size=8, val_fraction=0.2)
train = dict(batch_size=32, flip=False, patience=3)
budget = dict(num_samples=4, max_epochs=3)
options = dict(width=[1, 2])

def space(trial, options):
    trial.suggest_float("lr", *HELPER["lr"], log=True)
'''


def test_a_child_merges_its_sections_into_the_base_key_by_key(tmp_path):
    write_recipe(tmp_path, BASE, "base.py")
    child = write_recipe(tmp_path, 'base = "base.py"\ndata = dict(image_size=12)\nbudget = dict(num_samples=2)\n'
                                   'options = dict(depth=3)\n', "child.py")
    recipe = load_recipe(child)
    assert (recipe.data.image_size, recipe.data.val_fraction, recipe.data.source) == (12, 0.2, "digits")
    assert (recipe.budget.num_samples, recipe.budget.max_epochs) == (2, 3)
    assert recipe.train.batch_size == 32 and recipe.options == {"width": [1, 2], "depth": 3}
    assert recipe.name == "child"  # the name is never inherited: the study and run folder are the child's
    assert recipe.files == [(tmp_path / "base.py").resolve(), child.resolve()]


def test_a_child_with_its_own_space_brings_its_own_options_and_sees_the_base_names(tmp_path):
    write_recipe(tmp_path, BASE, "base.py")
    child = write_recipe(tmp_path, 'base = "base.py"\noptions = dict(depth=3)\n\ndef space(trial, options):\n'
                                   '    trial.suggest_float("lr", *HELPER["lr"])\n', "child.py")
    recipe = load_recipe(child)
    assert recipe.options == {"depth": 3}
    import optuna

    trial = optuna.create_study().ask()
    recipe.space(trial, recipe.options)
    assert not trial.distributions["lr"].log  # the child's space ran, with the base's HELPER


def test_the_bundle_is_what_runs_later_even_after_the_base_changes(tmp_path):
    base = write_recipe(tmp_path, BASE, "base.py")
    child = write_recipe(tmp_path, 'base = "base.py"\ndata = dict(image_size=12)\n', "child.py")
    first = load_recipe(child)
    base.write_text(BASE.replace("val_fraction=0.2", "val_fraction=0.3"))
    again = load_recipe(child, source=first.source)  # a resume, a Ray worker, TrialSpace: the recorded text
    assert again.data.val_fraction == 0.2 and again.resolved() == first.resolved()
    assert load_recipe(child).data.val_fraction == 0.3  # a new search reads the files again


def test_errors_point_into_the_file_that_wrote_them(tmp_path):
    write_recipe(tmp_path, BASE.replace("image_size=8", "image_size='8'"), "base.py")
    child = write_recipe(tmp_path, 'base = "base.py"\ndata = dict(imag_size=12)\n', "child.py")
    with pytest.raises(RecipeError, match=r"data.image_size must be of type int.*\(in .*base.py\)"):
        load_recipe(child)
    write_recipe(tmp_path, BASE, "base.py")
    with pytest.raises(RecipeError, match=r"Unknown key data.'imag_size'.*'image_size'.*\(in .*child.py\)"):
        load_recipe(child)
    write_recipe(tmp_path, BASE + "oops = 1 / 0\n", "base.py")
    with pytest.raises(ZeroDivisionError) as info:
        load_recipe(child)
    last = traceback.extract_tb(info.value.__traceback__)[-1]
    assert last.filename == str((tmp_path / "base.py").resolve()) and last.lineno == BASE.count("\n") + 1


def test_tracebacks_quote_the_text_that_ran_when_the_file_of_that_name_differs(tmp_path):
    # a resumed run whose recipe file was edited since, or a recipe built in Python next to a file of its name
    path = write_recipe(tmp_path, "# edited since\n" * 5, "edited.py")
    with pytest.raises(ZeroDivisionError) as info:
        load_recipe(path, source=BASE + "oops = 1 / 0\n")
    last = traceback.extract_tb(info.value.__traceback__)[-1]
    assert last.filename == str(path.resolve()) and last.line == "oops = 1 / 0"
    path.write_text("\n" * 3 + "raise ValueError('the file as it is now')\n")  # then the file runs as it is
    with pytest.raises(ValueError) as info:
        load_recipe(path)
    assert traceback.extract_tb(info.value.__traceback__)[-1].line == "raise ValueError('the file as it is now')"


def test_an_error_inside_an_inherited_space_names_the_base_file_and_line(tmp_path):
    from hpsearch.search.space import TrialSpace, validate_space

    write_recipe(tmp_path, BASE.replace('*HELPER["lr"]', '*HELPER["rate"]'), "base.py")
    child = write_recipe(tmp_path, 'base = "base.py"\n', "child.py")
    with pytest.raises(RecipeError, match=r"base.py, line 9: .*KeyError: 'rate'"):
        validate_space(TrialSpace(load_recipe(child)))


@pytest.mark.parametrize("files, fragment", [
    ({"child.py": 'base = "missing.py"\n'}, "base = 'missing.py' does not exist"),
    ({"child.py": 'base = "child.py"\n'}, "makes a loop"),
    ({"child.py": 'base = "other.py"\n', "other.py": 'base = "child.py"\n'}, "makes a loop"),
    ({"child.py": 'import os\nbase = os.getcwd()\n'}, "base must be a string"),
])
def test_bad_bases_are_one_line_errors(tmp_path, files, fragment):
    for name, text in files.items():
        write_recipe(tmp_path, text, name)
    with pytest.raises(RecipeError, match=fragment):
        load_recipe(tmp_path / "child.py")


def test_the_flowers_recipes_write_their_data_block_once():
    import ast

    for name in ("flowers_transfer", "flowers_tutorial", "flowers_cpu"):
        tree = ast.parse((RECIPES / f"{name}.py").read_text())
        assigned = {t.id: node.value for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                    if isinstance(t, ast.Name)}
        assert ast.literal_eval(assigned["base"]) == "flowers.py"
        data_keys = {k.arg for k in assigned["data"].keywords} if "data" in assigned else set()
        assert not data_keys & {"source", "url", "classes", "min_images"}, name
        recipe = load_recipe(RECIPES / f"{name}.py")
        assert recipe.data.url.endswith("flower_photos.tgz") and recipe.data.min_images == 3000


# --- recipes built in Python -----------------------------------------------------------------------------------------
def test_a_recipe_built_in_python_is_a_recipe_text_that_loads_back(tmp_path, monkeypatch):
    from hpsearch.options import Choice, Range
    from hpsearch.recipe import Recipe

    monkeypatch.chdir(tmp_path)
    ranges = {"drop": (0.0, 0.3)}

    def my_space(trial, options):
        options["backbones"].suggest(trial, "backbone")
        trial.suggest_float("drop_rate", *ranges["drop"])

    recipe = Recipe(name="py", data=dict(source="digits", image_size=12), train=dict(batch_size=16),
                    budget=dict(num_samples=3), options=dict(backbones=Choice("tutorial_cnn"), lr=Range(1e-3, 1e-2)),
                    space=my_space)
    assert (recipe.name, recipe.data.image_size, recipe.train.batch_size, recipe.budget.num_samples) == \
        ("py", 12, 16, 3)
    assert "ranges = {'drop': (0.0, 0.3)}" in recipe.source and "space = my_space" in recipe.source
    again = load_recipe(recipe.path, source=recipe.source)
    assert again.resolved() == recipe.resolved()
    assert recipe.with_overrides(["budget.num_samples=5"]).budget.num_samples == 5


def test_a_recipe_built_in_python_can_extend_a_file(tmp_path, monkeypatch):
    from hpsearch.recipe import Recipe

    monkeypatch.chdir(tmp_path)
    write_recipe(tmp_path, BASE, "base.py")
    recipe = Recipe(name="ext", base="base.py", data=dict(image_size=10))
    assert (recipe.data.image_size, recipe.data.val_fraction, recipe.budget.num_samples) == (10, 0.2, 4)
    write_recipe(tmp_path, "seed = 7\n" + BASE, "seeded.py")
    assert Recipe(base="seeded.py").seed == 7 and Recipe(base="seeded.py", seed=3).seed == 3  # given seeds only
    one = Recipe(base="base.py", warm_start="runs/a", defaults=[dict(lr=0.005)])
    assert one.warm_start == [str(tmp_path / "runs" / "a")] and one.defaults == [{"lr": 0.005}]


@pytest.mark.parametrize("space, fragment", [
    (lambda trial, options: None, "defined with def space"),
    ("def", "must be a function"),
    ("one", r"must take \(trial, options\)"),
    ("unwritable", "which cannot be written into a recipe"),
])
def test_a_space_that_cannot_be_written_out_is_refused(space, fragment):
    from hpsearch.recipe import Recipe

    def one(trial):
        return None

    unwritable_value = object()

    def unwritable(trial, options):
        return {"x": unwritable_value}

    chosen = {"one": one, "unwritable": unwritable, "def": 3}.get(space, space) if isinstance(space, str) else space
    with pytest.raises(RecipeError, match=fragment):
        Recipe(data=dict(source="digits"), space=chosen)
