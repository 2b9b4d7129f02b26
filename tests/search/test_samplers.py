"""Samplers sized to the budget: stratified start-up trials that cover every choice, then the model."""

from __future__ import annotations

import warnings
from collections import Counter

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hpsearch.config import build_section
from hpsearch.errors import RecipeError
from hpsearch.recipe import load_recipe
from hpsearch.search.budget import BudgetConfig
from hpsearch.search.samplers import StratifiedStartup, from_unit, make_sampler, startup_trials, varying_ranges
from hpsearch.search.space import TrialSpace, run_space, sampled_distributions, widest_choice
from tests.conftest import write_recipe

TWO_BACKBONES = '''
data = dict(source="digits", image_size=8)
budget = dict(num_samples=6, max_epochs=2)

def space(trial, options):
    backbone = trial.suggest_categorical("backbone", ["tutorial_cnn", "resnet10t"])
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    if backbone != "tutorial_cnn":
        trial.suggest_float("drop_path_rate", 0.0, 0.1)
'''


@pytest.fixture(autouse=True)
def quiet_optuna():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


class RecordingSampler(optuna.samplers.RandomSampler):
    """A model sampler that records the trial numbers it draws parameters for."""

    def __init__(self, seed: int):
        super().__init__(seed=seed)
        self.seen: list[int] = []

    def sample_independent(self, study, trial, name, distribution):
        self.seen.append(trial.number)
        return super().sample_independent(study, trial, name, distribution)


def run_search(sampler, space, trials: int, objective=None) -> list[dict]:
    """Ask and tell ``trials`` trials of ``space`` one after the other; return their configs."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    configs = []
    for _ in range(trials):
        trial = study.ask()
        config = {**run_space(space, trial), **trial.params}
        configs.append(config)
        study.tell(trial, objective(config) if objective else config["lr"])
    return configs


def test_startup_is_a_quarter_of_the_budget_raised_to_the_widest_choice_and_capped_at_ten():
    assert startup_trials(8) == 2 and startup_trials(6) == 2 and startup_trials(40) == 10 and startup_trials(100) == 10
    assert startup_trials(8, widest_choice=3) == 3  # each of 3 backbones once
    assert startup_trials(40, widest_choice=12) == 10 and startup_trials(2, widest_choice=3) == 2
    assert startup_trials(8, 3, requested=5) == 5


@pytest.mark.parametrize("name", ["tpe", "gp", "cmaes"])
def test_a_six_trial_search_over_two_backbones_tries_both_within_its_startup_trials(tmp_path, name):
    recipe = load_recipe(write_recipe(tmp_path, TWO_BACKBONES))
    space = TrialSpace(recipe)
    n = startup_trials(recipe.budget.num_samples, widest_choice(sampled_distributions(space)))
    assert n == 2
    configs = run_search(make_sampler(name, seed=0, n_startup=n), space, 6)
    assert {c["backbone"] for c in configs[:n]} == {"tutorial_cnn", "resnet10t"}


@pytest.mark.parametrize("seed", range(5))
def test_startup_trials_cover_every_choice_equally_and_each_stratum_of_a_range_once(seed):
    sampler = StratifiedStartup(optuna.samplers.RandomSampler(seed=seed), n_startup=6, seed=seed)
    study = optuna.create_study(sampler=sampler)
    picks, lrs = [], []
    for _ in range(6):
        trial = study.ask()
        picks.append(trial.suggest_categorical("backbone", ["a", "b", "c"]))
        lrs.append(trial.suggest_float("lr", 1e-4, 1e-2, log=True))
        study.tell(trial, 0.0)
    assert Counter(picks) == {"a": 2, "b": 2, "c": 2}
    import math

    strata = sorted(int((math.log(lr) - math.log(1e-4)) / (math.log(1e-2) - math.log(1e-4)) * 6) for lr in lrs)
    assert strata == list(range(6))  # a Latin hypercube on the log scale


def test_trials_that_run_at_once_get_distinct_startup_points():
    sampler = StratifiedStartup(optuna.samplers.RandomSampler(seed=0), n_startup=4, seed=0)
    study = optuna.create_study(sampler=sampler)
    asked = [study.ask() for _ in range(4)]  # none told yet: four trials running at once
    picks = [t.suggest_categorical("backbone", ["a", "b"]) for t in asked]
    assert Counter(picks) == {"a": 2, "b": 2}


def test_trials_already_in_the_study_count_as_startup_and_the_model_takes_over_after():
    model = RecordingSampler(seed=0)
    study = optuna.create_study(sampler=StratifiedStartup(model, n_startup=3, seed=0))
    distribution = FloatDistribution(0.0, 1.0)
    study.add_trial(optuna.trial.create_trial(value=1.0, params={"x": 0.5}, distributions={"x": distribution}))
    for _ in range(4):
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        study.tell(trial, 0.0)
    assert model.seen == [3, 4]  # trials 1 and 2 were start-up trials (with the added trial 0); 3 and 4 the model's


def test_the_model_waits_until_every_startup_trial_has_ended():
    """With trials running at once, a trial that starts while a start-up trial still runs is drawn at random: the
    model would fit only the trials that end first (the cheapest, not the best), however many of them."""
    model = RecordingSampler(seed=0)
    study = optuna.create_study(sampler=StratifiedStartup(model, n_startup=2, seed=0))
    first, second = study.ask(), study.ask()  # the two start-up trials, running at once
    for trial in (first, second):
        trial.suggest_float("x", 0.0, 1.0)
    study.tell(first, 1.0)  # the quick one finishes; the other still trains
    for _ in range(2):  # two more quick trials end (pruned) while the second start-up trial still trains
        early = study.ask()
        early.suggest_float("x", 0.0, 1.0)
        study.tell(early, state=optuna.trial.TrialState.PRUNED)
    assert model.seen == []  # drawn at random, not by a model fitted to the quick trials
    study.tell(second, state=optuna.trial.TrialState.FAIL)
    later = study.ask()
    later.suggest_float("x", 0.0, 1.0)
    assert model.seen == [later.number]  # every start-up trial has ended (a failed one too): the model takes over


def test_the_model_sampler_is_configured_for_the_budget():
    tpe = make_sampler("tpe", seed=1, n_startup=3, concurrent=2).sampler
    assert isinstance(tpe, optuna.samplers.TPESampler)
    assert tpe._multivariate is True and tpe._group is True and tpe._constant_liar is True
    assert make_sampler("tpe", seed=1, n_startup=3, concurrent=1).sampler._constant_liar is False
    assert isinstance(make_sampler("gp", 0, 2).sampler, optuna.samplers.GPSampler)
    assert isinstance(make_sampler("cmaes", 0, 2).sampler, optuna.samplers.CmaEsSampler)
    assert type(make_sampler("random", 0, 2)) is optuna.samplers.RandomSampler  # the baseline: no start-up design


def test_tpe_after_startup_exploits_the_better_backbone(tmp_path):
    space = TrialSpace(load_recipe(write_recipe(tmp_path, TWO_BACKBONES)))
    configs = run_search(make_sampler("tpe", seed=0, n_startup=4), space, 16,
                         objective=lambda c: 1.0 if c["backbone"] == "resnet10t" else 0.0)
    later = Counter(c["backbone"] for c in configs[4:])
    assert later["resnet10t"] > later["tutorial_cnn"]


def test_from_unit_maps_into_each_kind_of_distribution():
    assert from_unit(FloatDistribution(1e-4, 1e-2, log=True), 0.5, 0, 1) == pytest.approx(1e-3)
    assert from_unit(FloatDistribution(0.0, 1.0, step=0.25), 0.6, 0, 1) == 0.5
    assert from_unit(IntDistribution(1, 5), 0.99, 0, 1) == 5
    choices = CategoricalDistribution(["a", "b", "c"])
    assert [from_unit(choices, 0.0, s, 6) for s in range(6)] == ["a", "a", "b", "b", "c", "c"]


def test_an_unknown_sampler_or_scheduler_is_a_one_line_error_naming_the_choices():
    with pytest.raises(RecipeError, match=r"budget.sampler must be one of \['tpe', 'gp', 'random', 'cmaes'\]"):
        build_section(BudgetConfig, {"sampler": "bayes"}, "budget")
    with pytest.raises(RecipeError, match=r"budget.scheduler must be one of \['asha', 'hyperband', 'pbt', 'median', "
                                          r"'fifo'\]"):
        build_section(BudgetConfig, {"scheduler": "bohb"}, "budget")
    with pytest.raises(RecipeError, match="startup_trials must be between 0 and num_samples"):
        build_section(BudgetConfig, {"num_samples": 4, "startup_trials": 5}, "budget")


def test_a_name_sampled_with_a_range_per_branch_is_named_for_model_samplers_only(tmp_path):
    """A learning rate whose range depends on the backbone: every model-based sampler is told which name and
    which ranges; random search models nothing and is not; a space with one range per name gives no line."""
    per_branch = TWO_BACKBONES.replace('trial.suggest_float("lr", 1e-4, 1e-2, log=True)',
                                       'trial.suggest_float("lr", *((3e-4, 3e-3) if backbone == "tutorial_cnn" '
                                       'else (5e-4, 5e-3)), log=True)')
    distributions = sampled_distributions(TrialSpace(load_recipe(write_recipe(tmp_path, per_branch))))
    for sampler in ("tpe", "gp", "cmaes"):
        (line,) = varying_ranges(sampler, distributions)
        assert line.startswith("space samples 'lr' with 2 ranges") and f"Optuna's {sampler} sampler" in line
        assert "0.0003..0.003 (log)" in line and "0.0005..0.005 (log)" in line
    assert varying_ranges("random", distributions) == []
    one_range = sampled_distributions(TrialSpace(load_recipe(write_recipe(tmp_path, TWO_BACKBONES, "one.py"))))
    assert varying_ranges("tpe", one_range) == []


def test_tune_warns_before_ray_starts_of_a_range_per_branch(tmp_path, caplog):
    """`hpsearch tune`'s checks before Ray log the line at WARNING for TPE, and nothing with random search."""
    from hpsearch.search.tune import check_search

    per_branch = TWO_BACKBONES + "    trial.suggest_float('drop_rate', 0.0, 0.5 if backbone == 'resnet10t' else 0.3)\n"
    recipe = load_recipe(write_recipe(tmp_path, per_branch))
    with caplog.at_level("WARNING", logger="hpsearch.search.tune"):
        check_search(recipe, TrialSpace(recipe))
    assert [r.getMessage()[:44] for r in caplog.records] == ["space samples 'drop_rate' with 2 ranges (0.."]
    caplog.clear()
    random = load_recipe(write_recipe(tmp_path, per_branch + "budget['sampler'] = 'random'\n", "random.py"))
    with caplog.at_level("WARNING", logger="hpsearch.search.tune"):
        check_search(random, TrialSpace(random))
    assert caplog.records == []
