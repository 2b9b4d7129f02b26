from __future__ import annotations

import optuna
import pytest

from hpsearch.errors import RecipeError
from hpsearch.recipe import load_recipe
from hpsearch.search.space import TRIAL_NUMBER_KEY, TrialSpace, split_trial_config, validate_space
from tests.conftest import MINIMAL_RECIPE, RECIPES, write_recipe

DIGITS_BACKBONES = ["tutorial_cnn", "resnet10t", "mobilenetv3_small_050"]


@pytest.mark.parametrize("backbone", DIGITS_BACKBONES)
def test_digits_space_is_valid_for_every_backbone(backbone):
    recipe = load_recipe(RECIPES / "digits.py")
    space = TrialSpace(recipe)
    params = {"backbone": backbone, "lr": 1e-3, "weight_decay": 1e-4, "label_smoothing": 0.05, "drop_rate": 0.1,
              "aug_strength": 0.5, "drop_path_rate": 0.05}
    if backbone == "tutorial_cnn":
        del params["drop_path_rate"]
    trial = optuna.trial.FixedTrial(params, number=4)
    config = space(trial)
    merged = {**trial.params, **config}
    trial_config, number = split_trial_config(merged)
    assert number == 4 and trial_config.seed == recipe.seed + 4
    assert trial_config.backbone == backbone and trial_config.lr == 1e-3
    assert trial_config.epochs == recipe.budget.max_epochs
    assert trial_config.flip is False  # the recipe's train default survives
    assert "lr" not in config  # sampled values are not overwritten by the defaults


def test_trial_space_pickles_and_reloads_the_recipe(tmp_path):
    import pickle

    overrides = ["train.batch_size=16"]
    space = TrialSpace(load_recipe(write_recipe(tmp_path, MINIMAL_RECIPE), overrides), overrides)
    clone = pickle.loads(pickle.dumps(space))
    config = clone(optuna.trial.FixedTrial({"lr": 0.005}, number=1))
    assert config[TRIAL_NUMBER_KEY] == 1 and config["batch_size"] == 16


def test_validate_space_rejects_unknown_knobs_and_backbones(tmp_path):
    bad_name = MINIMAL_RECIPE.replace('"lr"', '"learning_rate"')
    with pytest.raises(RecipeError, match="'learning_rate', which is not a training option"):
        validate_space(TrialSpace(load_recipe(write_recipe(tmp_path, bad_name))))
    bad_backbone = MINIMAL_RECIPE + '    trial.suggest_categorical("backbone", ["resnet18", "resnet_18x"])\n'
    with pytest.raises(RecipeError, match="Unknown backbone 'resnet_18x'"):
        validate_space(TrialSpace(load_recipe(write_recipe(tmp_path, bad_backbone, "r2.py"))))
