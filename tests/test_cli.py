from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from hpsearch.argtypes import duration
from hpsearch.cli import build_parser, ensemble_methods, main, overrides_from
from tests.conftest import MINIMAL_RECIPE, write_recipe


def test_flags_become_recipe_overrides():
    args = build_parser().parse_args(["tune", "r.py", "--num-samples", "8", "--max-epochs", "3", "--seed", "5",
                                      "--cpus-per-trial", "0.5", "--gpus-per-trial", "0.25", "--set", "train.lr=0.1",
                                      "--time-budget", "1h30m"])
    assert overrides_from(args) == ["train.lr=0.1", "budget.num_samples=8", "budget.max_epochs=3", "seed=5",
                                    "budget.cpus_per_trial=0.5", "budget.gpus_per_trial=0.25",
                                    "budget.time_budget_s=5400.0"]


@pytest.mark.parametrize("extra, fragment", [
    (["--set", "budget.num_smaples=3"], "Did you mean 'num_samples'"),
    (["--set", "train.lr=abc"], "train.lr must be of type float"),
    (["--num-samples", "0"], "num_samples must be at least 1"),
    (["--resume"], "--resume needs the run directory"),
    (["--set", "budget.sampler=bayes"], "budget.sampler must be one of ['tpe', 'gp', 'random', 'cmaes']"),
    (["--set", "budget.scheduler=bohb"], "budget.scheduler must be one of ['asha', 'hyperband', 'pbt', 'median'"),
    (["--set", "budget.max_ms_per_image=-1"], "budget.max_ms_per_image must be positive"),
    (["--set", "budget.max_params=0"], "budget.max_params must be at least 1"),
    (["--set", "budget.scheduler=pbt", "--set", "budget.grace_period=1", "--max-epochs", "1"],
     "needs budget.max_epochs >= 2"),
    (["--warm-start", "nowhere"], "--warm-start"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, extra, fragment):
    recipe = write_recipe(tmp_path, MINIMAL_RECIPE)
    assert main(["tune", str(recipe), *extra]) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err and err.startswith("hpsearch tune: error:")


def test_warm_start_runs_become_an_override_of_absolute_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["tune", "r.py", "--warm-start", "runs/a", str(tmp_path / "b")])
    assert overrides_from(args) == [f"warm_start={tmp_path / 'runs' / 'a'},{tmp_path / 'b'}"]


def test_a_pbt_space_without_pbt_knobs_and_bad_defaults_stop_before_ray(tmp_path, capsys):
    body = MINIMAL_RECIPE.replace('trial.suggest_float("lr"', 'trial.suggest_float("drop_rate"').replace(
        "1e-3, 1e-2, log=True", "0.0, 0.5")
    assert main(["tune", str(write_recipe(tmp_path, body)), "--out", str(tmp_path / "r1"),
                 "--set", "budget.scheduler=pbt"]) == 2
    assert "perturbs lr, weight_decay, aug_strength, mixup_alpha" in capsys.readouterr().err
    defaults = MINIMAL_RECIPE + "defaults = [dict(lr=5.0)]\n"
    assert main(["tune", str(write_recipe(tmp_path, defaults, "d.py")), "--out", str(tmp_path / "r2")]) == 2
    assert "defaults[0] sets lr=5.0, outside" in capsys.readouterr().err
    assert not (tmp_path / "r1" / "ray").exists() and not (tmp_path / "r2" / "ray").exists()


def test_missing_recipe_from_a_real_process(tmp_path):
    out = subprocess.run([sys.executable, "-m", "hpsearch.cli", "tune", str(tmp_path / "missing.py")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "does not exist" in out.stderr and "Traceback" not in out.stderr


def test_unknown_backbone_in_space_stops_before_ray_starts(tmp_path, capsys):
    body = MINIMAL_RECIPE + '    trial.suggest_categorical("backbone", ["resnet18", "resnet1B"])\n'
    assert main(["tune", str(write_recipe(tmp_path, body)), "--out", str(tmp_path / "run")]) == 2
    assert "Unknown backbone 'resnet1B'" in capsys.readouterr().err
    assert not (tmp_path / "run" / "ray").exists()


@pytest.mark.parametrize("text, seconds", [("600", 600), ("90s", 90), ("30m", 1800), ("1.5h", 5400),
                                           ("1h30m", 5400), ("2m30s", 150)])
def test_durations(text, seconds):
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "30x", "0", "m"])
def test_bad_durations_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="duration|positive"):
        duration(text)


def all_parsers(parser: argparse.ArgumentParser):
    yield "hpsearch", parser
    for action in parser._subparsers._group_actions:
        yield from ((f"hpsearch {name}", sub) for name, sub in action.choices.items())


def test_every_argument_has_help_text():
    missing = [f"{where} {action.dest}" for where, parser in all_parsers(build_parser())
               for action in parser._actions
               if action.help is None or (action.help != argparse.SUPPRESS and not action.help.strip())]
    assert not missing, missing


@pytest.mark.parametrize("argv, fragment", [
    (["ensemble", "run", "--methods", "average,bogus"], "argument --methods: invalid choice 'bogus'"),
    (["ensemble", "run", "--methods", ","], "argument --methods: invalid choice"),
    (["report", "run", "--formats", "md,pdf"], "argument --formats: invalid choice 'pdf' (choose from md, csv"),
    (["tune", "r.py", "--time-budget", "soon"], "argument --time-budget: expected a duration"),
])
def test_choices_and_durations_are_checked_by_the_parser(argv, fragment, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and fragment in capsys.readouterr().err


def test_parsed_methods_and_formats_are_lists():
    args = build_parser().parse_args(["ensemble", "run", "--methods", "greedy, average"])
    assert args.methods == ["greedy", "average"]
    assert build_parser().parse_args(["report", "run"]).formats == ["md", "csv", "tex", "html", "json"]


def test_the_parser_accepts_the_methods_the_ensemble_stage_does():
    from hpsearch.api import ENSEMBLE_METHODS
    from hpsearch.ensemble import parse_methods

    assert build_parser().parse_args(["ensemble", "run"]).methods == list(ENSEMBLE_METHODS)  # API and CLI agree
    allowed = ",".join(parse_methods(",".join(m for m in ensemble_methods())))
    assert build_parser().parse_args(["ensemble", "run", "--methods", allowed]).methods == allowed.split(",")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["ensemble", "run", "--methods", "best_single"])  # always scored, not a method


def test_python_dash_m_and_version(tmp_path):
    import hpsearch

    out = subprocess.run([sys.executable, "-m", "hpsearch", "--version"], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == f"hpsearch {hpsearch.__version__}"
    helped = subprocess.run([sys.executable, "-m", "hpsearch", "--help"], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert helped.returncode == 0 and "exit codes: 0 done" in helped.stdout and "130" in helped.stdout
