"""Bad input ends with one readable line naming the problem and the fix, and a non-zero exit code."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
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
    return ["tune", str(write_recipe(tmp_path, "def space(trial, options):\n    pass\n"))], "missing data"


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
    return ["ensemble", str(tmp_path), "--methods", "average,magic"], "argument --methods: invalid choice 'magic'"


def case_evaluate_not_a_run(tmp_path):
    return ["evaluate", str(tmp_path)], "not a finished hpsearch run"


def case_sweep_unknown_knob(tmp_path):
    return ["sweep", str(tmp_path), "--param", "dropout"], "not a regularization knob"


def case_low_above_high(tmp_path):
    body = MINIMAL_RECIPE.replace('trial.suggest_float("lr", 1e-3, 1e-2, log=True)',
                                  'trial.suggest_float("lr", 1e-2, 1e-3, log=True)')
    return ["tune", str(write_recipe(tmp_path, body))], "failed (line 6: trial.suggest_float(\"lr\", 1e-2, 1e-3"


def case_space_raises(tmp_path):
    body = MINIMAL_RECIPE + "    1 / 0\n"
    return ["tune", str(write_recipe(tmp_path, body))], "ZeroDivisionError: division by zero"


def case_text_choices_for_a_number(tmp_path):
    body = MINIMAL_RECIPE + '    trial.suggest_categorical("weight_decay", ["0.1", "0.01"])\n'
    return ["tune", str(write_recipe(tmp_path, body))], "train.weight_decay (sampled by space) must be of type float"


def case_float_range_for_an_integer(tmp_path):
    body = MINIMAL_RECIPE + '    trial.suggest_float("batch_size", 16, 64)\n'
    return ["tune", str(write_recipe(tmp_path, body))], "train.batch_size (sampled by space) must be of type int"


def case_set_shadowed_by_the_space(tmp_path):
    recipe = str(write_recipe(tmp_path, MINIMAL_RECIPE))
    return ["tune", recipe, "--set", "train.lr=5.0"], "--set train.lr=5.0 has no effect: the recipe's space samples"


def case_root_for_the_digits_source(tmp_path):
    recipe = str(write_recipe(tmp_path, MINIMAL_RECIPE))
    return ["tune", recipe, "--set", f"data.root={tmp_path}"], "data.root is only read with data.source='folder'"


def case_checksum_mismatch(tmp_path):
    from tests.data.test_download import make_archive

    archive = make_archive(tmp_path / "flowers.tgz")
    body = MINIMAL_RECIPE.replace('data = dict(source="digits", image_size=8)',
                                  f'data = dict(source="folder", url={archive.as_uri()!r}, sha256="0" * 64, '
                                  f'image_size=8)')
    return ["tune", str(write_recipe(tmp_path, body))], "Checksum mismatch"


def case_truncated_archive(tmp_path):
    from tests.data.test_download import make_archive

    archive = tmp_path / "cut.tgz"
    archive.write_bytes(make_archive(tmp_path / "flowers.tgz").read_bytes()[:700])
    body = MINIMAL_RECIPE.replace('data = dict(source="digits", image_size=8)',
                                  f'data = dict(source="folder", url={archive.as_uri()!r}, image_size=8)')
    return ["tune", str(write_recipe(tmp_path, body))], "truncated or corrupt"


def case_unreachable_cluster(tmp_path):
    recipe = str(write_recipe(tmp_path, MINIMAL_RECIPE))
    return ["tune", recipe, "--out", str(tmp_path / "run"), "--address", "127.0.0.1:1"], "No Ray cluster answers at"


def case_malformed_address(tmp_path):
    recipe = str(write_recipe(tmp_path, MINIMAL_RECIPE))
    return ["tune", recipe, "--out", str(tmp_path / "run"), "--address", "head:port"], "must look like HOST:PORT"


def case_sweep_values_out_of_range(tmp_path):
    argv = ["sweep", str(tmp_path), "--param", "drop_rate", "--values", "5,7"]
    return argv, "--values 5 for drop_rate is out of range"


def case_sweep_values_not_numbers(tmp_path):
    return ["sweep", str(tmp_path), "--param", "drop_rate", "--values", "low,high"], "comma-separated numbers"


def case_compare_unknown_format(tmp_path):
    return ["compare", str(tmp_path), "--output", str(tmp_path / "table.docx")], "--output must end in"


CASES = [case_syntax, case_missing_space, case_missing_data, case_not_python, case_no_recipe, case_unknown_set_key,
         case_wrong_set_type, case_unknown_backbone, case_unknown_knob, case_image_too_small, case_missing_folder,
         case_empty_folder, case_single_class, case_only_non_images, case_too_few_per_class, case_unwritable_out,
         case_bad_url_scheme, case_resume_without_out, case_resume_nothing, case_ensemble_not_a_run,
         case_unknown_method, case_evaluate_not_a_run, case_sweep_unknown_knob, case_low_above_high,
         case_space_raises, case_text_choices_for_a_number, case_float_range_for_an_integer,
         case_set_shadowed_by_the_space, case_root_for_the_digits_source, case_checksum_mismatch,
         case_truncated_archive, case_unreachable_cluster, case_malformed_address, case_sweep_values_out_of_range,
         case_sweep_values_not_numbers, case_compare_unknown_format]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_bad_input_gets_one_clear_line(case, tmp_path, capsys):
    argv, fragment = case(tmp_path)
    assert_one_line(exit_code(argv), capsys.readouterr().err, fragment)


def exit_code(argv: list[str]) -> int:
    """What the process would exit with: main's return value, or argparse's exit for a bad argument."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


def assert_one_line(code: int, err: str, fragment: str) -> None:
    """Exit code 2, no traceback, and exactly one error line, which holds ``fragment`` (progress bars aside)."""
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert code == 2, err
    assert len(errors) == 1 and fragment in errors[0], err
    assert "Traceback" not in err and "weights_only=False" not in err  # nor torch's unsafe advice


# Hostile inputs against a finished run directory: each gets a copy of one made in-process (tests/conftest.py).
def run_case_tune_into_a_finished_run(run, tmp_path):
    shutil.rmtree(run / "ray", ignore_errors=True)  # the clean-up that used to make `tune` replace the run
    recipe = str(write_recipe(tmp_path, MINIMAL_RECIPE))
    return ["tune", recipe, "--out", str(run)], "already holds a search (trials.csv"


def run_case_trials_cut_mid_row(run, tmp_path):
    text = (run / "trials.csv").read_text()
    (run / "trials.csv").write_text(text[: text.rindex(",", 0, len(text) - 30)])
    return ["evaluate", str(run)], "is damaged (its last row is cut short)"


def run_case_trials_unknown_status(run, tmp_path):
    table = pd.read_csv(run / "trials.csv", dtype=str)
    table.loc[0, "status"] = "compl"
    table.to_csv(run / "trials.csv", index=False)
    return ["ensemble", str(run), "--methods", "average"], "has status 'compl'"


def run_case_trials_text_in_a_number(run, tmp_path):
    table = pd.read_csv(run / "trials.csv", dtype=str)
    table.loc[1, "val_acc"] = "high"
    table.to_csv(run / "trials.csv", index=False)
    return ["report", str(run)], "column 'val_acc' holds 'high'"


def run_case_split_damaged(run, tmp_path):
    (run / "split.csv").write_text("id,label\n1,2\n")
    return ["evaluate", str(run)], "split.csv' is damaged"


def run_case_model_pt_garbage(run, tmp_path):
    first = best_folder(run)
    (first / "model.pt").write_bytes(b"\x80\x04garbage")
    return ["evaluate", str(run)], "is damaged or not an hpsearch checkpoint"


def run_case_model_pt_foreign(run, tmp_path):
    import torch

    first = best_folder(run)
    torch.save({"weights": [1, 2, 3], "epoch": 3}, first / "model.pt")
    return ["evaluate", str(run)], "is damaged or not an hpsearch checkpoint"


def run_case_model_pt_from_another_architecture(run, tmp_path):
    import torch

    first = best_folder(run)
    torch.save({"fc.weight": torch.zeros(3, 3)}, first / "model.pt")
    return ["evaluate", str(run)], "is not this run's checkpoint"


def run_case_member_path_escapes(run, tmp_path):
    record = {"format": 2, "method": "average", "estimator": "SoftVoting", "params": {},
              "members": [{"name": "x", "path": "../../../../etc", "weight": 1.0}], "val_accuracy": 0.5,
              "val_log_loss": 1.0}
    (run / "ensembles").mkdir()
    (run / "ensembles" / "average.json").write_text(json.dumps(record))
    return ["evaluate", str(run)], "points outside the run directory"


def run_case_ensemble_record_garbage(run, tmp_path):
    (run / "ensembles").mkdir()
    (run / "ensembles" / "greedy.json").write_text("{ this is not json")
    return ["predict", str(run), str(tmp_path), "--model", "greedy"], "greedy.json' is damaged (not valid JSON"


def run_case_predict_unknown_model(run, tmp_path):
    return ["predict", str(run), str(tmp_path), "--model", "nope"], "No ensemble 'nope'"


def run_case_predict_only_unreadable_files(run, tmp_path):
    for name in ("a.png", "b.jpg"):
        (tmp_path / name).write_bytes(b"not an image")
    return ["predict", str(run), str(tmp_path)], "None of the 2 file(s) given could be read as an image"


def run_case_predict_decompression_bomb(run, tmp_path):
    bomb_png(tmp_path / "bomb.png")
    return ["predict", str(run), str(tmp_path / "bomb.png")], "larger than data.max_image_pixels"


def run_case_predict_output_is_a_folder(run, tmp_path):
    digit_png(tmp_path / "one.png")
    return ["predict", str(run), str(tmp_path / "one.png"), "--output", str(tmp_path)], "--output names a folder"


def resumable(run: Path, tmp_path: Path) -> Path:
    """Give the made run what `resume` reads: its recipe's copy and the resolved config that recipe gives."""
    from hpsearch.recipe import load_recipe

    recipe = write_recipe(tmp_path, MINIMAL_RECIPE)
    (run / "recipe.py").write_text(recipe.read_text())
    resolved = load_recipe(recipe).resolved()
    (run / "config.json").write_text(json.dumps({**resolved, "overrides": [], "storage": None}))
    return recipe


def run_case_resume_changes_the_data(run, tmp_path):
    resumable(run, tmp_path)
    return ["resume", str(run), "--set", "data.image_size=24"], "On resume, data.image_size cannot change (8 in"


def run_case_tune_resume_changes_the_model(run, tmp_path):
    recipe = resumable(run, tmp_path)
    return (["tune", str(recipe), "--out", str(run), "--resume", "--set", "train.backbone=resnet10t"],
            "On resume, train.backbone cannot change ('tutorial_cnn' in")


def run_case_resume_changes_the_schedule(run, tmp_path):
    resumable(run, tmp_path)
    return ["resume", str(run), "--set", "budget.max_epochs=9"], "On resume, budget.max_epochs cannot change"


def run_case_tune_resume_with_another_recipe(run, tmp_path):
    resumable(run, tmp_path)
    other = write_recipe(tmp_path, MINIMAL_RECIPE + "    trial.suggest_float('drop_rate', 0.0, 0.5)\n", "other.py")
    return ["tune", str(other), "--out", str(run), "--resume"], "The recipe differs from the copy"


RUN_CASES = [run_case_tune_into_a_finished_run, run_case_trials_cut_mid_row, run_case_trials_unknown_status,
             run_case_trials_text_in_a_number, run_case_split_damaged, run_case_model_pt_garbage,
             run_case_model_pt_foreign, run_case_model_pt_from_another_architecture, run_case_member_path_escapes,
             run_case_ensemble_record_garbage, run_case_predict_unknown_model, run_case_predict_only_unreadable_files,
             run_case_predict_decompression_bomb, run_case_predict_output_is_a_folder, run_case_resume_changes_the_data,
             run_case_tune_resume_changes_the_model, run_case_resume_changes_the_schedule,
             run_case_tune_resume_with_another_recipe]


def best_folder(run: Path) -> Path:
    """The model folder `evaluate` and `predict` load first: the best trial's."""
    from hpsearch.rundir import RunDir

    return RunDir(run).best_model().folder


def bomb_png(path: Path, side: int = 20000) -> Path:
    """A tiny PNG whose header claims side x side pixels (a decompression bomb, without the memory)."""
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4: ihdr + 12] = struct.pack(">II", side, side)
    data[ihdr + 17: ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr: ihdr + 17])))
    path.write_bytes(bytes(data))
    return path


def digit_png(path: Path) -> Path:
    Image.fromarray(np.full((8, 8), 128, dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("case", RUN_CASES, ids=[c.__name__[9:] for c in RUN_CASES])
def test_bad_run_directory_input_gets_one_clear_line(case, made_run, tmp_path, capsys):
    run, work = tmp_path / "run", tmp_path / "work"
    shutil.copytree(made_run, run)
    work.mkdir()
    argv, fragment = case(run, work)
    assert_one_line(main(argv), capsys.readouterr().err, fragment)


def test_resume_of_a_finished_run_whose_ray_folder_is_gone_keeps_its_trials(made_run, tmp_path, capsys):
    """Issue 16, defect 2: `ray/` deleted after the search; resume says the search is finished, changes nothing."""
    run = tmp_path / "run"
    shutil.copytree(made_run, run)
    shutil.rmtree(run / "ray", ignore_errors=True)
    resumable(run, tmp_path)
    before = (run / "trials.csv").read_text()
    assert main(["resume", str(run)]) == 0
    assert "its 3 trials are finished" in capsys.readouterr().err
    assert (run / "trials.csv").read_text() == before


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
    assert budget.num_samples >= 1 and 1 <= budget.grace_epochs <= budget.max_epochs


# --- regression tests of issue 16's defects that are not a one-line error ----------------------------------------
HOSTILE_CLASS_NAMES = ["NA", "None", "1e5", "chat noir", "狗 ü", "null", "nan"]


def test_class_names_pandas_would_parse_stay_text_everywhere(tmp_path, capsys):
    """Defect 5: a class folder named NA, null or nan became a missing value when split.csv was read back."""
    from hpsearch.evaluation import evaluate_run
    from hpsearch.rundir import RunDir, read_table
    from tests.conftest import make_run

    root = image_folder(tmp_path / "images", {name: 6 for name in HOSTILE_CLASS_NAMES})
    run = make_run(tmp_path / "run", trials=1, root=root)
    assert sorted(RunDir(run).classes) == sorted(HOSTILE_CLASS_NAMES)
    evaluate_run(run)
    per_class = read_table(run / "evaluation" / "per_class_best_single.csv", {"class": str})
    assert sorted(per_class["class"]) == sorted(HOSTILE_CLASS_NAMES)
    assert main(["predict", str(run), str(root / "NA"), "--output", str(tmp_path / "p.csv")]) == 0
    predicted = read_table(tmp_path / "p.csv", {"class": str})
    assert predicted["class"].notna().all() and set(predicted["class"]) <= set(HOSTILE_CLASS_NAMES)


def test_a_decompression_bomb_in_a_dataset_is_skipped_as_unreadable(tmp_path):
    from hpsearch.data import DataConfig, make_source

    root = image_folder(tmp_path / "images", {"a": 4, "b": 4})
    bomb_png(root / "a" / "bomb.png")
    source = make_source(DataConfig(source="folder", root=str(root), image_size=8))
    from hpsearch.data.sources import CorruptImages

    with pytest.raises(CorruptImages) as caught:
        source.decode(list(source.list().ids))
    assert caught.value.ids == ["a/bomb.png"]


def test_a_damaged_decoded_cache_is_rebuilt_with_a_warning(tmp_path):
    from hpsearch.data import DataConfig, prepare_trial_data

    config = DataConfig(source="digits", image_size=8, cache_dir=str(tmp_path / "cache"))
    first = np.array(prepare_trial_data(config, 0, tmp_path / "run").train.images)  # a copy: the file is cut below
    for cached in (tmp_path / "cache" / "decoded").iterdir():
        cached.write_bytes(cached.read_bytes()[:100])  # cut short, as a full disk or a kill would leave it
    with pytest.warns(UserWarning, match="cache .* is damaged"):
        again = prepare_trial_data(config, 0, tmp_path / "run")
    assert np.array_equal(first, again.train.images)


def test_report_notes_a_missing_or_corrupt_study_and_goes_on(made_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(made_run, run)
    assert main(["report", str(run)]) == 0
    assert "study.db is missing from the run directory" in capsys.readouterr().out
    (run / "study.db").write_bytes(b"this is not an SQLite database" * 100)
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert "study.db cannot be read" in out and (run / "report" / "index.html").is_file()


def test_run_directory_files_follow_the_umask(made_run, tmp_path):
    """Run-directory files used to be created 0600 (mkstemp); a team sharing a folder could not read them."""
    from hpsearch.evaluation import evaluate_run

    run = tmp_path / "run"
    shutil.copytree(made_run, run)
    previous = os.umask(0o022)
    try:
        evaluate_run(run)
    finally:
        os.umask(previous)
    assert (run / "test_metrics.csv").stat().st_mode & 0o777 == 0o644


def test_a_full_disk_during_tune_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    import hpsearch.search.tune as tune_module

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "run" / "ray"))

    monkeypatch.setattr(tune_module, "ray_session", lambda *a, **k: contextlib.nullcontext())
    monkeypatch.setattr(tune_module, "check_resources", lambda *a: None)
    monkeypatch.setattr(tune_module, "run_plan", full)
    code = main(["tune", str(write_recipe(tmp_path, MINIMAL_RECIPE)), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1 and "is full" in err and "hpsearch resume" in err and "Traceback" not in err


def test_resume_ends_the_ray_processes_a_killed_driver_left(tmp_path):
    """After `kill -9` of the driver, Ray's agents ignored SIGTERM and stayed; resume now ends them."""
    import subprocess
    import sys

    from hpsearch.search.session import RAY_SESSION_FILE, leftover_processes, reap_leftover_ray

    session = str(tmp_path / "session_2026-01-01_00-00-00_000000_1")
    orphan = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                               "signal.SIG_IGN); time.sleep(600)", f"--session-dir={session}"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / RAY_SESSION_FILE).write_text(json.dumps({"driver_pid": dead.pid, "session_dir": session}))
    try:
        assert leftover_processes(session) == [orphan.pid]
        assert reap_leftover_ray(tmp_path) == [orphan.pid]
        assert orphan.wait(timeout=10) == -9 and not (tmp_path / RAY_SESSION_FILE).exists()
    finally:
        orphan.kill()
