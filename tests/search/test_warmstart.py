"""Warm starts from earlier runs, and the recipe's defaults tried first."""

from __future__ import annotations

import json
import shutil

import optuna
import pytest
from optuna.trial import TrialState

from hpsearch.cli import main
from hpsearch.errors import RecipeError
from hpsearch.recipe import load_recipe
from hpsearch.rundir import RunDir, read_trials
from hpsearch.search.samplers import make_sampler, sampler_seed
from hpsearch.search.space import TrialSpace
from hpsearch.search.warmstart import check_defaults, enqueue_defaults, imported_trials, warm_start, write_rows
from tests.conftest import write_recipe

NARROW = '''
data = dict(source="digits", image_size=8)
budget = dict(num_samples=2, max_epochs=1, grace_period=1)

def space(trial, options):
    trial.suggest_float("lr", 1e-3, 7e-3, log=True)
'''


@pytest.fixture(autouse=True)
def quiet():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def new_study() -> optuna.Study:
    return optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))


def test_finished_trials_inside_the_new_space_are_added_and_the_others_counted(made_run, tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, NARROW))  # made_run's trials have lr 3e-3, 6e-3, 9e-3
    study = new_study()
    result = warm_start(study, TrialSpace(recipe), [str(made_run)], recipe.budget)
    assert result.added == 2 and dict(result.skipped) == {"a value outside the new space's ranges": 1}
    source = read_trials(made_run)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert [t.value for t in study.trials] == pytest.approx(source["val_acc"][:2].tolist())
    assert [t.params["lr"] for t in study.trials] == pytest.approx([3e-3, 6e-3])
    assert study.trials[0].user_attrs["origin"] == "warm_start"
    assert all(row["origin"] == f"warm_start:{made_run}" and row["checkpoint"] is False for row in result.rows)
    assert [row["optuna_trial"] for row in result.rows] == [0, 1]
    assert warm_start(study, TrialSpace(recipe), [str(made_run)], recipe.budget).added == 0  # once per study
    assert imported_trials(study) == 2
    assert not (made_run / "study.db").exists()  # the earlier run is only read


def test_a_space_that_needs_a_parameter_the_earlier_run_did_not_sample_skips_them_all(made_run, tmp_path):
    extra = '1e-3, 1e-2, log=True)\n    trial.suggest_float("drop_rate", 0, 0.5)'
    body = NARROW.replace("1e-3, 7e-3, log=True)", extra)
    recipe = load_recipe(write_recipe(tmp_path, body))
    result = warm_start(new_study(), TrialSpace(recipe), [str(made_run)], recipe.budget)
    assert result.added == 0 and dict(result.skipped) == {"a parameter the new space needs is missing": 3}


def test_under_deployment_bounds_trials_without_measured_costs_are_skipped(made_run, tmp_path):
    body = NARROW.replace("grace_period=1)", "grace_period=1, max_params=1e6)")
    recipe = load_recipe(write_recipe(tmp_path, body))
    result = warm_start(new_study(), TrialSpace(recipe), [str(made_run)], recipe.budget)
    assert result.added == 0 and sum(result.skipped.values()) == 3


def test_imported_rows_join_trials_csv_and_never_count_as_this_runs_models(made_run, tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, NARROW))
    run = tmp_path / "new"
    run.mkdir()
    write_rows(run, warm_start(new_study(), TrialSpace(recipe), [str(made_run)], recipe.budget).rows)
    shutil.copy(made_run / "trials.csv", tmp_path / "source.csv")
    trials = read_trials(run)
    assert len(trials) == 2 and trials["origin"].str.startswith("warm_start:").all()
    assert list(trials.columns[:3]) == ["trial_id", "optuna_trial", "status"]
    (run / "config.json").write_text(json.dumps({"name": "new", "seed": 0, "data": {"source": "digits"}}))
    with pytest.raises(Exception, match="No completed trial with a checkpoint"):
        RunDir(run).ranked_trials()


def draw(study: optuna.Study) -> optuna.trial.Trial:
    trial = study.ask()
    trial.suggest_categorical("backbone", ["a", "b"])
    trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    trial.suggest_float("drop", 0.0, 0.5)
    return trial


def test_a_warm_started_study_does_not_replay_its_source_runs_draws():
    """The same seed on the same known trials gives TPE the same candidates: warm-started from a run whose
    model-drawn trial did not finish, the new run would train that configuration again."""
    source = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", sampler_seed(0, 1), 3))
    for _ in range(4):  # three start-up trials, then the model's first
        trial = draw(source)
        source.tell(trial, trial.params["lr"] * (2.0 if trial.params["backbone"] == "a" else 1.0))
    finished, model_draw = source.trials[:3], source.trials[3].params

    def first_draw(seed: int) -> dict:
        study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", seed, 3))
        for known in finished:
            study.add_trial(known)
        return draw(study).params

    assert first_draw(sampler_seed(0, 1)) == model_draw  # the replay, with the source's own seed
    assert first_draw(sampler_seed(0, 1, imported=3))["lr"] != model_draw["lr"]
    assert sampler_seed(0, 1, imported=3) == sampler_seed(0, 1, imported=3)  # still seeded
    assert sampler_seed(0, 2) == 1000 and sampler_seed(0, 1, imported=4) != sampler_seed(0, 1, imported=3)


def test_defaults_are_checked_against_the_space(tmp_path):
    space = TrialSpace(load_recipe(write_recipe(tmp_path, NARROW)))
    check_defaults(space, [{"lr": 2e-3}, {}])
    with pytest.raises(RecipeError, match=r"defaults\[0\] sets lr=0.5, outside"):
        check_defaults(space, [{"lr": 0.5}])
    with pytest.raises(RecipeError, match=r"defaults\[1\] sets \['drop_rate'\], which the recipe's space does not"):
        check_defaults(space, [{"lr": 2e-3}, {"drop_rate": 0.1}])


def test_defaults_are_the_first_trials_and_are_enqueued_once():
    study = new_study()
    assert enqueue_defaults(study, [{"lr": 2e-3}, {"lr": 4e-3}]) == 2
    assert enqueue_defaults(study, [{"lr": 2e-3}, {"lr": 4e-3}]) == 0
    first = study.ask()
    assert first.suggest_float("lr", 1e-3, 7e-3, log=True) == 2e-3


DIGITS = '''
name = "warm"
seed = 0
data = dict(source="digits", image_size=8)
train = dict(batch_size=32, flip=False)
budget = dict(num_samples=2, max_epochs=2, grace_period=2, max_concurrent=2)
{defaults}

def space(trial, options):
    trial.suggest_float("lr", 1e-3, 1e-2, log=True)
'''


@pytest.mark.slow
def test_tune_with_warm_start_and_defaults_end_to_end(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["tune", str(write_recipe(tmp_path, DIGITS.format(defaults=""), "a.py")), "--out", str(first)]) == 0
    recipe = write_recipe(tmp_path, DIGITS.format(defaults="defaults = [dict(lr=0.005)]"), "b.py")
    assert main(["tune", str(recipe), "--out", str(second), "--warm-start", str(first)]) == 0
    trials = read_trials(second)
    imported = trials[trials["origin"].str.startswith("warm_start")]
    own = trials[~trials["origin"].str.startswith("warm_start")]
    assert len(imported) == 2 and len(own) == 2
    assert not any((second / "trials" / t).exists() for t in imported["trial_id"])  # not trained again
    assert set(imported["trial_id"]) == set(read_trials(first)["trial_id"])
    default = own[own["origin"] == "default"]
    assert len(default) == 1 and default["lr"].iloc[0] == pytest.approx(0.005)
    assert default["optuna_trial"].iloc[0] == 2  # the first trial after the two imported ones
    study = optuna.load_study(study_name="warm", storage=f"sqlite:///{second / 'study.db'}")
    assert len(study.trials) == 4 and sum(t.user_attrs.get("origin") == "warm_start" for t in study.trials) == 2
    assert json.loads((second / "summary.json").read_text())["best_trial"] in set(own["trial_id"])
    assert main(["resume", str(second), "--num-samples", "3"]) == 0  # an extension: one more trial, nothing re-added
    trials = read_trials(second)
    assert len(trials) == 5 and trials["trial_id"].is_unique
    assert len(optuna.load_study(study_name="warm", storage=f"sqlite:///{second / 'study.db'}").trials) == 5
    config = json.loads((second / "config.json").read_text())  # the extension is recorded
    assert config["budget"]["num_samples"] == 3 and [e["num_samples"] for e in config["experiments"]] == [2, 1]
    assert config["resumes"][-1]["budget_changes"] == {"num_samples": 3}
