"""Range and Choice: what they sample, how --set changes them, and how they are written back as text."""

from __future__ import annotations

import pickle

import numpy as np
import optuna
import pytest

from hpsearch.errors import RecipeError
from hpsearch.options import Choice, Range, override_declared, parse_declared


def test_range_samples_floats_ints_and_log_scales():
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    lr = Range(1e-4, 1e-2, log=True).suggest(trial, "lr")
    blocks = Range(0, 6).suggest(trial, "frozen_blocks")
    assert 1e-4 <= lr <= 1e-2 and isinstance(blocks, int) and 0 <= blocks <= 6
    assert trial.distributions["lr"].log and isinstance(trial.distributions["frozen_blocks"],
                                                         optuna.distributions.IntDistribution)
    low, high = Range(0.5, 1.5)  # unpacks like the two-item list it replaces
    assert (low, high) == (0.5, 1.5)


def test_choice_samples_categorically_and_is_a_sequence():
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    choice = Choice("tutorial_cnn", "resnet10t")
    assert choice.suggest(trial, "backbone") in choice
    assert trial.distributions["backbone"].choices == ("tutorial_cnn", "resnet10t")
    assert trial.suggest_categorical("again", choice) in choice and len(choice) == 2


@pytest.mark.parametrize("value", [Range(1e-4, 1e-2, log=True), Range(0, 8), Range(0.0, 2.0), Choice("a", "b"),
                                   Choice(0, 3, 5), Choice(0.0)])
def test_repr_is_source_that_rebuilds_it_and_pickling_keeps_it(value):
    assert parse_declared(repr(value)) == value and type(parse_declared(repr(value))) is type(value)
    assert pickle.loads(pickle.dumps(value)) == value


def test_numpy_scalars_become_the_python_values_they_hold():
    # a recipe that computes its bounds with NumPy (np.linspace, np.int64 from an array) gets a plain declaration
    interval = Range(np.float64(1e-4), np.float64(1e-2), log=True)
    choice = Choice(np.int64(0), np.int64(3), np.str_("a"))
    assert repr(interval) == "Range(0.0001, 0.01, log=True)" and repr(choice) == "Choice(0, 3, 'a')"
    assert Range(np.int64(0), np.int64(6)).integer and parse_declared(repr(choice)) == choice
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    assert type(choice.suggest(trial, "x")) in (int, str)


@pytest.mark.parametrize("make, fragment", [
    (lambda: Range(2.0, 1.0), "low <= high"),
    (lambda: Range(0.0, 1.0, log=True), "needs low > 0"),
    (lambda: Range("a", 1), "two numbers"),
    (lambda: Choice(), "at least one value"),
])
def test_bad_declarations_are_one_line_errors(make, fragment):
    with pytest.raises(RecipeError, match=fragment):
        make()


def test_set_keeps_the_kind_and_the_item_type():
    assert override_declared("options.lr", Range(1e-4, 1e-2, log=True), "1e-3,5e-3") == Range(1e-3, 5e-3, log=True)
    assert override_declared("options.a", Range(0.0, 2.0), "1,2") == Range(1.0, 2.0)  # a float range stays one
    assert type(override_declared("options.a", Range(0.0, 2.0), "1,2").low) is float
    assert override_declared("options.lr", Range(1e-4, 1e-2), "3e-3") == Range(3e-3, 3e-3)
    assert override_declared("options.b", Choice("a", "b"), "resnet18,vgg11_bn") == Choice("resnet18", "vgg11_bn")
    assert override_declared("options.b", Choice("a", "b"), "['resnet18', 'vgg11_bn']") == \
        Choice("resnet18", "vgg11_bn")  # a list's repr, as the Python API writes it: no quotes kept
    assert override_declared("options.m", Choice(0.0, 0.2), "0") == Choice(0.0)
    assert type(override_declared("options.m", Choice(0.0, 0.2), "0")[0]) is float
    assert override_declared("options.f", Choice(0, 3), "6") == Choice(6)
    assert override_declared("options.lr", Range(1e-4, 1e-2), "Choice(0.001, 0.01)") == Choice(0.001, 0.01)


@pytest.mark.parametrize("current, text, fragment", [
    (Choice(0, 3), "2.5", "must be an int"),
    (Range(0.0, 1.0), "a,b", "is not a float"),
    (Range(0.0, 1.0), "1,2,3", "takes LOW,HIGH"),
    (Range(0.0, 1.0), "Range(x, 1)", "is not a valid Range"),
])
def test_bad_overrides_name_the_option_and_the_value(current, text, fragment):
    with pytest.raises(RecipeError, match=fragment):
        override_declared("options.x", current, text)
