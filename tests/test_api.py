"""The Python API: what `import hpsearch` exports, Run on a run directory, and the overrides it takes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import types

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import hpsearch
from hpsearch.api import Run, override_texts, prepare
from hpsearch.errors import DataError, HpsearchError, RecipeError
from hpsearch.rundir import read_trials
from tests.conftest import MINIMAL_RECIPE, RECIPES, ROOT, write_recipe


def test_import_hpsearch_is_light_and_exports_its_api():
    code = ("import sys, hpsearch; heavy = {m.split('.')[0] for m in sys.modules} & {'torch', 'ray', 'optuna', "
            "'pandas', 'timm'}; print(sorted(heavy)); hpsearch.Range(1, 2); print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["[]", "[]"], out.stdout  # Range and Choice need none of them either
    for name in hpsearch.__all__:
        assert getattr(hpsearch, name) is not None, name
    assert set(hpsearch.__all__) <= set(dir(hpsearch))
    with pytest.raises(AttributeError, match="no attribute 'tuner'"):
        hpsearch.tuner  # noqa: B018


def test_keyword_overrides_become_set_texts():
    assert override_texts({"num_samples": 8, "image_size": 24, "lr": 0.01, "seed": 3, "name": "x",
                           "classes": ("a", "b"), "time_budget_s": None,
                           "options": {"backbones": hpsearch.Choice("resnet18"), "width": [1, 2]},
                           "train": {"flip": False}}) == [
        "budget.num_samples=8", "data.image_size=24", "train.lr=0.01", "seed=3", "name=x", "data.classes=['a', 'b']",
        "budget.time_budget_s=None", "options.backbones=Choice('resnet18')", "options.width=[1, 2]",
        "train.flip=False"]
    with pytest.raises(RecipeError, match="Unknown override num_sample=8.*Did you mean 'num_samples'"):
        override_texts({"num_sample": 8})
    from pathlib import Path

    assert override_texts({"warm_start": [Path("runs/a")]}) == ["warm_start=['runs/a']"]


def test_prepare_takes_a_path_a_module_or_a_recipe(tmp_path):
    path = write_recipe(tmp_path, MINIMAL_RECIPE)
    from_path = prepare(path, num_samples=5)
    module = types.ModuleType("my_recipe")
    module.__file__ = str(path)
    from_module = prepare(module, max_epochs=7)
    from_recipe = prepare(from_path, image_size=12)
    assert (from_path.budget.num_samples, from_module.budget.max_epochs) == (5, 7)
    assert (from_recipe.budget.num_samples, from_recipe.data.image_size) == (5, 12)  # overrides add up
    assert from_recipe.overrides == ("budget.num_samples=5", "data.image_size=12")
    with pytest.raises(HpsearchError, match="not both and not neither"):
        prepare(path, data="digits")
    with pytest.raises(HpsearchError, match="not both and not neither"):
        prepare()


@pytest.fixture
def run(made_run, tmp_path) -> Run:
    return Run(shutil.copytree(made_run, tmp_path / "run"))


def test_run_tables_and_best_trial(run):
    assert isinstance(run.trials, pd.DataFrame) and len(run.trials) == 3
    assert list(run.history.columns)[:3] == ["trial_id", "optuna_trial", "epoch"] and run.history.empty
    best = run.best
    assert best["val_acc"] == run.trials["val_acc"].max() and best["trial_id"] in set(run.trials["trial_id"])
    assert run.config["name"] == "made" and "3 trials" in repr(run)


def test_run_refuses_a_folder_that_holds_no_search(tmp_path):
    with pytest.raises(HpsearchError, match="is not a finished hpsearch run"):
        Run(tmp_path)


def test_the_stages_after_the_search_through_the_api(run):
    table = run.ensemble(["average", "greedy"], top_k=3, tta="flip", folds=3)
    assert set(table["method"]) == {"best_single", "average", "greedy"} and table["chosen"].astype(bool).sum() == 1
    assert set(table["tta"].dropna()) <= {"", "flip"} and (run.path / "ensembles" / "greedy.json").is_file()
    student = run.distill("greedy", epochs=1)
    assert student.name == "distilled" and 0.0 <= student.val_accuracy <= 1.0
    refit = run.refit("best")  # the best trial, in the variant validation chose (with or without flips)
    assert refit.name in {"best_single+refit", "best_single+tta+refit"}
    assert (run.path / refit.refit[0] / "model.pt").is_file()
    exported = run.export("average", output=run.path / "shipped.onnx")
    assert exported == run.path / "shipped.onnx" and exported.stat().st_size > 0
    test = run.evaluate()
    assert set(table["model"]) <= set(test["model"]) and {"best_single", "average", "greedy"} <= set(test["model"])
    assert "distilled" in set(test["model"])
    assert test["accuracy"].between(0, 1).all() and (run.path / "test_metrics.csv").is_file()
    report = run.report("md,csv")
    assert (report.folder / "index.html").is_file() and (report.folder / "leaderboard.md").is_file()
    assert not (report.folder / "leaderboard.tex").exists()
    compared = hpsearch.compare(run, run.path)
    assert len(compared) == 2 and compared["single_test_acc"].notna().all()
    shipped = test.loc[test["ships"].astype(bool), "model"].tolist()
    assert len(shipped) == 1 and compared["shipped"].tolist() == shipped * 2
    with pytest.raises(HpsearchError, match="--methods takes a comma-separated list"):
        run.ensemble(["average", "bogus"])
    with pytest.raises(HpsearchError, match="top_k and members must be at least 1 and folds at least 2"):
        run.ensemble(top_k=0)
    with pytest.raises(HpsearchError, match="--tta takes a comma-separated list"):
        run.ensemble(["average"], tta=["mirror"])


def test_sweep_pairs_each_knob_with_its_values(run, monkeypatch):
    import hpsearch.search.sweep as sweep

    calls = []
    monkeypatch.setattr(sweep, "run_sweep", lambda path, knobs, **options: calls.append((knobs, options)) or {})
    run.sweep({"l1": None, "drop_rate": [0, 0.5]}, epochs=2)
    run.sweep("aug_strength")
    assert calls[0] == ([("drop_rate", [0.0, 0.5]), ("l1", sweep.DEFAULT_VALUES["l1"])],
                        {"epochs": 2, "cpus_per_run": 1.0, "address": None})
    assert calls[1][0] == [("aug_strength", sweep.DEFAULT_VALUES["aug_strength"])]
    with pytest.raises(HpsearchError, match="not a regularization knob"):
        run.sweep(["lr"])


def digit_images(count: int = 6) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return np.uint8(np.round(digits.images[:count] * 255 / 16)), digits.target[:count]


def test_predict_files_and_the_same_images_in_memory_agree(run, tmp_path):
    pixels, _ = digit_images()
    folder = tmp_path / "new"
    folder.mkdir()
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(folder / f"{i}.png")
    from_files = run.predict(folder)
    assert list(from_files.columns[:3]) == ["path", "class", "probability"] and len(from_files) == len(pixels)
    batches = {"uint8 (N, H, W)": pixels, "floats in [0, 1]": pixels / 255.0, "(N, H, W, 1)": pixels[..., None],
               "(N, 1, H, W)": pixels[:, None], "PIL images": [Image.fromarray(p) for p in pixels],
               "list of arrays": list(pixels)}
    for kind, batch in batches.items():
        table = run.predict(batch)
        assert table["index"].tolist() == list(range(len(pixels))), kind
        np.testing.assert_allclose(table.filter(like="p_").to_numpy(), from_files.filter(like="p_").to_numpy(),
                                   atol=1e-6, err_msg=kind)
    from hpsearch.evaluation.deployed import predict_exported
    from hpsearch.evaluation.predict import image_files

    shipped = predict_exported(run.export("best"), image_files([folder]))
    assert shipped["class"].tolist() == from_files["class"].tolist()
    assert run.predict([str(folder / "0.png")])["path"].tolist() == [str(folder / "0.png")]
    run.ensemble(["average"], top_k=2)
    assert len(run.predict(pixels, model="average")) == len(pixels)


@pytest.mark.parametrize("images, fragment", [
    (np.full((2, 8, 8), 16.0), "float images must be in \\[0, 1\\].*divide by their maximum"),
    (np.zeros((8, 8)), "wrap a single image in a list"),
    (np.full((2, 8, 8), 300, dtype=np.int64), "integer images must be in 0..255"),
    ([np.zeros((8, 8, 7))], "an image is \\(H, W\\), \\(H, W, C\\) or \\(C, H, W\\)"),
    ([], "No images given"),
])
def test_predict_explains_images_it_cannot_take(run, images, fragment):
    with pytest.raises(DataError, match=fragment):
        run.predict(images)


def test_predict_with_an_unknown_ensemble_says_what_was_built(run):
    with pytest.raises(HpsearchError, match="No ensemble 'greedy'.*built: none"):
        run.predict(digit_images()[0], model="greedy")


# --- with Ray -------------------------------------------------------------------------------------------------------
TINY = '''
name = "tiny-api"
seed = 2
data = dict(source="digits", image_size=8)
train = dict(batch_size=32, flip=False, patience=2)
budget = dict(num_samples=2, max_epochs=2, grace_period=1, max_concurrent=1)

def space(trial, options):
    trial.suggest_float("lr", 1e-3, 1e-2, log=True)
'''


def layout(run_dir) -> set[str]:
    """The run directory's files outside Ray's own folder, with trial ids replaced by the Optuna trial number."""
    trials = read_trials(run_dir)
    names = dict(zip(trials["trial_id"], "#" + trials["optuna_trial"].astype(str), strict=True))
    found = set()
    for path in run_dir.rglob("*"):
        parts = path.relative_to(run_dir).parts
        if path.is_file() and parts[0] != "ray":
            found.add("/".join(names.get(part, part) for part in parts))
    return found


@pytest.mark.slow
def test_the_api_and_the_command_line_leave_identical_run_directories(tmp_path):
    from hpsearch.cli import main

    recipe = write_recipe(tmp_path, TINY)
    via_api = hpsearch.tune(recipe, out=tmp_path / "api", verbose=0)
    assert main(["tune", str(recipe), "--out", str(tmp_path / "cli")]) == 0
    assert layout(via_api.path) == layout(tmp_path / "cli")
    api_trials, cli_trials = via_api.trials, Run(tmp_path / "cli").trials
    same = ["optuna_trial", "status", "lr", "epochs", "best_epoch", "val_acc", "val_loss"]
    pd.testing.assert_frame_equal(api_trials[same], cli_trials[same])
    api_config, cli_config = via_api.config, Run(tmp_path / "cli").config
    assert {k: v for k, v in api_config.items() if k != "experiments"} == \
        {k: v for k, v in cli_config.items() if k != "experiments"}
    assert set(pd.read_json(via_api.path / "summary.json", typ="series").index) == \
        set(pd.read_json(tmp_path / "cli" / "summary.json", typ="series").index)


def readme_five_lines() -> str:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- five-lines:start -->", 1)[1].split("<!-- five-lines:end -->", 1)[0]
    code = block.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) == 5, code
    return code


STATE_SCRIPT = '''
import hashlib, json, random, sys, warnings
import matplotlib, numpy as np, torch
# The dependencies hpsearch loads install their own warning filters when first imported (Ray, urllib3,
# SciPy); load them first, so that what follows measures hpsearch itself.
import optuna, ray, ray.tune, ray.tune.search.optuna, scipy.special, sklearn, timm  # noqa: F401

def state():
    digest = lambda obj: hashlib.sha256(repr(obj).encode()).hexdigest()
    return {"threads": torch.get_num_threads(), "random": digest(random.getstate()),
            "numpy": digest(np.random.get_state()[1].tobytes()), "torch": digest(torch.get_rng_state().tolist()),
            "backend": repr(dict.__getitem__(matplotlib.rcParams, "backend")),
            "filters": [repr(f) for f in warnings.filters]}

before = state()
import hpsearch
after_import = state()
exec(open("five_lines.py").read())  # the README's five lines, verbatim: tune, ensemble, evaluate, predict
run.ensemble(["average", "greedy", "soup"], top_k=2)  # a soup's BatchNorm pass draws random batches
run.report()
print(json.dumps({"before": before, "after_import": after_import, "after": state(),
                  "pyplot": "matplotlib.pyplot" in sys.modules}))
'''


@pytest.mark.slow
def test_the_readme_five_lines_run_and_a_whole_run_changes_no_process_wide_state(tmp_path):
    """The README's five lines, in a fresh interpreter, print the test table and predictions; that run, a soup and
    the report leave torch's threads, the random generators, matplotlib's backend and the warning filters alone."""
    (tmp_path / "recipes").mkdir()
    shutil.copy(RECIPES / "digits.py", tmp_path / "recipes" / "digits.py")
    (tmp_path / "five_lines.py").write_text(readme_five_lines())
    (tmp_path / "state.py").write_text(STATE_SCRIPT)
    out = subprocess.run([sys.executable, "state.py"], capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "best_single" in out.stdout and "greedy" in out.stdout and "accuracy" in out.stdout  # the test table
    assert "probability" in out.stdout  # the predictions
    assert (tmp_path / "runs" / "digits-api" / "test_metrics.csv").is_file()
    import json

    states = json.loads(out.stdout.strip().splitlines()[-1])
    assert states["after_import"] == states["before"]
    for key in ("threads", "random", "numpy", "torch", "backend", "filters"):
        assert states["after"][key] == states["before"][key], key
    assert not states["pyplot"]  # figures never went through pyplot


@pytest.mark.slow
def test_tune_data_with_a_preset_ends_cleanly_at_its_time_budget(tmp_path, capsys):
    """`hpsearch tune --data digits --preset fast --num-samples 40` would run 40 trials of up to 10 epochs (the
    preset's own 12 can finish within a minute on 2 cores); 45 s end it first:
    exit 0, the trials that ran exported at their best epoch, the running ones marked as stopped by the budget,
    and any that had not started yet (Ray ends them without a result) do not break the export or the summary."""
    from hpsearch.cli import main

    assert main(["tune", "--data", "digits", "--preset", "fast", "--time-budget", "45s", "--num-samples", "40",
                 "--out", str(tmp_path / "run")]) == 0
    run = Run(tmp_path / "run")
    trials = run.trials
    assert run.config["budget"]["time_budget_s"] == 45.0 and run.config["name"] == "digits-fast"
    assert 1 <= len(trials) < run.config["budget"]["num_samples"]
    # a trial running when the budget ran out is labelled so; whether one was (rather than between two trials, or
    # before its first epoch) depends on the machine's speed (stop_reason's rules: tests/search/test_export.py)
    assert set(trials["stop_reason"]) <= {"time_budget", "asha", "max_epochs"}, trials[["epochs", "stop_reason"]]
    ran = trials[trials["epochs"] > 0]
    assert (ran["status"] == "completed").all() and ran["checkpoint"].astype(bool).all()
    for trial_id in ran["trial_id"]:
        assert (run.path / "trials" / trial_id / "model.pt").is_file()
    assert (run.path / "summary.json").is_file() and "Search finished" in capsys.readouterr().out
