"""Bad input ends with one readable line naming the problem and the fix, and a non-zero exit code."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from hpsearch.cli import main
from hpsearch.config import build_section
from hpsearch.data import DataConfig
from hpsearch.errors import RecipeError
from hpsearch.search.budget import BudgetConfig
from tests.conftest import MINIMAL_RECIPE, write_recipe


def folder_recipe(tmp_path: Path, root: Path) -> Path:
    data = f'data = dict(source="folder", root={str(root)!r}, image_size=8)'
    return write_recipe(tmp_path, MINIMAL_RECIPE.replace('data = dict(source="digits", image_size=8)', data))


def image_folder(root: Path, classes: dict[str, int], junk: bool = False) -> Path:
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (10, 10), (i * 20 % 255, 0, 0)).save(root / name / f"{i}.png")
            if junk:
                (root / name / f"{i}.txt").write_text("not an image")
    return root


def case_syntax(tmp_path):
    return ["tune", str(write_recipe(tmp_path, "data = dict(\n"))], "Syntax error in recipe"


def case_missing_space(tmp_path):
    return ["tune", str(write_recipe(tmp_path, "data = dict(source='digits')\n"))], "missing space"


def case_missing_data(tmp_path):
    return ["tune", str(write_recipe(tmp_path, "def space(trial):\n    pass\n"))], "missing data"


def case_not_python(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("data: {}")
    return ["tune", str(path)], "ending in .py"


def case_no_recipe(tmp_path):
    return ["tune", str(tmp_path / "nope.py")], "does not exist"


def case_unknown_set_key(tmp_path):
    recipe = str(write_recipe(tmp_path, MINIMAL_RECIPE))
    return ["tune", recipe, "--set", "train.learning_rate=0.1"], "Unknown --set key"


def case_wrong_set_type(tmp_path):
    recipe = str(write_recipe(tmp_path, MINIMAL_RECIPE))
    return ["tune", recipe, "--set", "budget.max_epochs=many"], "must be of type int"


def case_unknown_backbone(tmp_path):
    body = MINIMAL_RECIPE + '    trial.suggest_categorical("backbone", ["resnet50", "resnet5O"])\n'
    return ["tune", str(write_recipe(tmp_path, body))], "Did you mean"


def case_unknown_knob(tmp_path):
    body = MINIMAL_RECIPE + '    trial.suggest_float("dropout", 0.0, 0.5)\n'
    return ["tune", str(write_recipe(tmp_path, body))], "'dropout', which is not a training option"


def case_image_too_small(tmp_path):
    body = MINIMAL_RECIPE + '    trial.suggest_categorical("backbone", ["vgg11"])\n'
    return ["tune", str(write_recipe(tmp_path, body))], "cannot take 8x8 images"


def case_missing_folder(tmp_path):
    return ["tune", str(folder_recipe(tmp_path, tmp_path / "no-such-folder"))], "does not exist; fix data.root"


def case_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    return ["tune", str(folder_recipe(tmp_path, tmp_path / "empty"))], "at least two class subfolders"


def case_single_class(tmp_path):
    root = image_folder(tmp_path / "one", {"cats": 10})
    return ["tune", str(folder_recipe(tmp_path, root))], "at least two class subfolders"


def case_only_non_images(tmp_path):
    root = tmp_path / "junk"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        (root / name / "notes.txt").write_text("text")
    return ["tune", str(folder_recipe(tmp_path, root))], "at least two class subfolders with images"


def case_too_few_per_class(tmp_path):
    root = image_folder(tmp_path / "few", {"a": 10, "b": 2}, junk=True)
    return ["tune", str(folder_recipe(tmp_path, root))], "too few images"


def case_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    recipe = str(write_recipe(tmp_path, MINIMAL_RECIPE))
    return ["tune", recipe, "--out", str(blocker / "run")], "Cannot write to the output folder"


def case_bad_url_scheme(tmp_path):
    body = MINIMAL_RECIPE.replace('data = dict(source="digits", image_size=8)',
                                  'data = dict(source="folder", url="ftp://example.org/x.tgz", image_size=8)')
    return ["tune", str(write_recipe(tmp_path, body))], "http, https or file URL"


def case_resume_without_out(tmp_path):
    return ["tune", str(write_recipe(tmp_path, MINIMAL_RECIPE)), "--resume"], "--resume needs the run directory"


def case_resume_nothing(tmp_path):
    return ["resume", str(tmp_path)], "not an hpsearch run directory"


def case_ensemble_not_a_run(tmp_path):
    return ["ensemble", str(tmp_path)], "not a finished hpsearch run"


def case_unknown_method(tmp_path):
    return ["ensemble", str(tmp_path), "--methods", "average,magic"], "--methods takes"


def case_evaluate_not_a_run(tmp_path):
    return ["evaluate", str(tmp_path)], "not a finished hpsearch run"


def case_sweep_unknown_knob(tmp_path):
    return ["sweep", str(tmp_path), "--param", "dropout"], "not a regularization knob"


CASES = [case_syntax, case_missing_space, case_missing_data, case_not_python, case_no_recipe, case_unknown_set_key,
         case_wrong_set_type, case_unknown_backbone, case_unknown_knob, case_image_too_small, case_missing_folder,
         case_empty_folder, case_single_class, case_only_non_images, case_too_few_per_class, case_unwritable_out,
         case_bad_url_scheme, case_resume_without_out, case_resume_nothing, case_ensemble_not_a_run,
         case_unknown_method, case_evaluate_not_a_run, case_sweep_unknown_knob]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_bad_input_gets_one_clear_line(case, tmp_path, capsys):
    argv, fragment = case(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert fragment in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3


def test_disk_full_while_saving_is_one_line(tmp_path, capsys, monkeypatch):
    import hpsearch.data.preview as preview

    def full(path, writer):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(preview, "atomic_save", full)  # where `show` saves its PNGs
    code = main(["show", str(Path(__file__).parents[1] / "recipes" / "digits.py"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and "No space left on device" in err and "Free some disk space" in err
    assert "Traceback" not in err


def test_debug_flag_keeps_the_traceback(tmp_path):
    with pytest.raises(RecipeError):
        main(["--debug", "tune", str(tmp_path / "nope.py")])


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.dictionaries(st.sampled_from(["source", "root", "image_size", "grayscale", "val_fraction", "test_fraction",
                                        "normalize", "min_images", "colour"]),
                       st.one_of(st.none(), st.booleans(), st.integers(-5, 600), st.floats(-1, 2, allow_nan=False),
                                 st.text(max_size=8)), max_size=5))
def test_recipe_validator_accepts_or_explains(values):
    """Any data section either validates into correctly typed values or raises RecipeError, nothing else."""
    try:
        config = build_section(DataConfig, values, "data")
    except RecipeError as err:
        assert str(err)
        return
    assert isinstance(config.image_size, int) and 4 <= config.image_size <= 1024
    assert 0 < config.val_fraction < 0.5 and 0 < config.test_fraction < 0.5
    assert config.source in ("digits", "folder")


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["num_samples", "max_epochs", "grace_period", "cpus_per_trial", "gpus_per_trial",
                                        "max_concurrent", "reduction_factor"]),
                       st.one_of(st.none(), st.integers(-3, 50), st.floats(-1, 8, allow_nan=False),
                                 st.text(max_size=3)),
                       max_size=4))
def test_budget_validator_accepts_or_explains(values):
    try:
        budget = build_section(BudgetConfig, values, "budget")
    except RecipeError:
        return
    assert budget.num_samples >= 1 and 1 <= budget.grace_period <= budget.max_epochs
