"""The flowers recipes' search spaces, checked for every backbone without touching the network."""

from __future__ import annotations

import sys

import numpy as np
import optuna
import pytest

from hpsearch.models import check_input_size, create_model
from hpsearch.options import Choice, Range
from hpsearch.recipe import load_recipe
from hpsearch.search.samplers import make_sampler, varying_ranges
from hpsearch.search.space import TrialSpace, run_space, sampled_distributions, split_trial_config, validate_space
from tests.conftest import RECIPES

FLOWERS = load_recipe(RECIPES / "flowers.py")
FLOWERS_MODULE = sys.modules["hpsearch_recipe_flowers"]  # the loaded recipe module, for its FAMILIES table


def family_params(backbone: str) -> dict:
    params = {"backbone": backbone, "lr": 1e-4, "weight_decay": 1e-4, "drop_rate": 0.5, "label_smoothing": 0.1,
              "aug_strength": 1.0, "mixup_alpha": 0.2, "cutmix_alpha": 0.0}
    if FLOWERS_MODULE.FAMILIES[backbone]:
        params["drop_path_rate"] = 0.2
    return params


@pytest.mark.parametrize("backbone", FLOWERS.options["backbones"])
def test_flowers_space_is_valid_for_every_backbone(backbone):
    space = TrialSpace(FLOWERS)
    trial = optuna.trial.FixedTrial(family_params(backbone), number=2)
    constants = space(trial)
    config, number = split_trial_config({**trial.params, **constants})
    assert config.backbone == backbone and number == 2
    assert config.epochs == FLOWERS.budget.max_epochs and config.flip is True


@pytest.mark.slow
@pytest.mark.parametrize("backbone", FLOWERS.options["backbones"])
def test_every_flowers_backbone_takes_the_default_image_size(backbone):
    size = FLOWERS.data.image_size
    check_input_size(create_model(backbone, 5, 3, size), backbone, 3, size)


def test_cpu_budget_override_narrows_the_backbones():
    recipe = load_recipe(RECIPES / "flowers.py", ["options.backbones=tutorial_cnn,resnet10t", "data.image_size=64"])
    assert recipe.options["backbones"] == Choice("tutorial_cnn", "resnet10t")
    validate_space(TrialSpace(recipe), recipe.data)


@pytest.mark.parametrize("recipe", ["flowers.py", "flowers_cpu.py", "flowers_transfer.py"])
def test_flowers_spaces_give_each_name_one_range(recipe):
    """Every flowers recipe samples each name with one range, so that TPE models it across backbones."""
    loaded = load_recipe(RECIPES / recipe)
    distributions = sampled_distributions(TrialSpace(loaded), samples=64)
    assert distributions["backbone"] and varying_ranges("tpe", distributions) == []


def test_flowers_cpu_tpe_proposes_resnet10t_rates_above_tutorial_cnns_old_top():
    """The defect the one-range space mends: with a learning rate per backbone, TPE modelled resnet10t's rate
    within tutorial_cnn's range (the first trial's) and never proposed one above 3e-3. Here accuracy rises with
    the rate on resnet10t, and TPE (after two stratified start-up trials, the first of them tutorial_cnn) must
    follow it past 3e-3."""
    space = TrialSpace(load_recipe(RECIPES / "flowers_cpu.py"))
    study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", seed=0, n_startup=2))
    rng = np.random.default_rng(0)
    for _ in range(30):
        trial = study.ask()
        run_space(space, trial)
        on_resnet = trial.params["backbone"] == "resnet10t"
        study.tell(trial, 0.2 * on_resnet + 0.1 * np.log10(trial.params["lr"] / 3e-4) + 0.05 * rng.random())
    assert study.trials[0].params["backbone"] == "tutorial_cnn"
    rates = [t.params["lr"] for t in study.trials[2:] if t.params["backbone"] == "resnet10t"]
    assert len(rates) >= 20 and sum(rate > 3e-3 for rate in rates) >= 5


def test_a_backbone_below_its_minimum_size_is_refused_before_the_search():
    from hpsearch.errors import RecipeError

    recipe = load_recipe(RECIPES / "flowers.py", ["options.backbones=inception_v3", "data.image_size=64"])
    with pytest.raises(RecipeError, match="'inception_v3' cannot take 64x64 images"):
        validate_space(TrialSpace(recipe), recipe.data)


def test_transfer_and_tutorial_recipes_resolve():
    transfer = load_recipe(RECIPES / "flowers_transfer.py")
    trial = optuna.trial.FixedTrial({"backbone": "tf_efficientnet_lite2", "lr": 1e-3, "layer_decay": 0.7,
                                     "weight_decay": 1e-4, "drop_rate": 0.2, "label_smoothing": 0.1,
                                     "aug_strength": 1.0, "freeze_epochs": 1, "frozen_blocks": 3})
    constants = TrialSpace(transfer)(trial)
    config, _ = split_trial_config({**trial.params, **constants})
    assert config.pretrained and config.weights == "pip" and config.freeze_epochs == 1
    assert config.backbone == "tf_efficientnet_lite2"  # Lite0, Lite1 and Lite2 are searched
    assert (config.layer_decay, config.frozen_blocks) == (0.7, 3)
    tutorial = load_recipe(RECIPES / "flowers_tutorial.py")
    first = TrialSpace(tutorial)(optuna.trial.FixedTrial({}, number=0))
    second = TrialSpace(tutorial)(optuna.trial.FixedTrial({}, number=1))
    assert (first["aug_strength"], first["drop_rate"]) == (0.0, 0.0)
    assert (second["aug_strength"], second["drop_rate"]) == (1.0, 0.2)


def test_transfer_cpu_budget_resolves_and_too_many_frozen_blocks_are_refused_before_the_search():
    from hpsearch.errors import RecipeError

    cpu = ["data.image_size=160", "options.lr=3e-3,1e-2", "options.frozen_blocks=6", "options.freeze_epochs=0"]
    recipe = load_recipe(RECIPES / "flowers_transfer.py", cpu)
    assert recipe.options["frozen_blocks"] == Choice(6) and recipe.options["lr"] == Range(3e-3, 1e-2, log=True)
    validate_space(TrialSpace(recipe), recipe.data)
    too_many = load_recipe(RECIPES / "flowers_transfer.py", ["options.frozen_blocks=0,8"])
    with pytest.raises(RecipeError, match="frozen_blocks must be below 8, but got frozen_blocks=8"):
        validate_space(TrialSpace(too_many), too_many.data)


def test_unknown_option_override_names_the_options():
    from hpsearch.errors import RecipeError

    with pytest.raises(RecipeError, match="Did you mean 'backbones'"):
        load_recipe(RECIPES / "flowers.py", ["options.backbone=resnet18"])


def test_flowers_cpu_is_the_cpu_search_the_readme_ran_as_set_options():
    """recipes/flowers_cpu.py (13 lines extending flowers.py) resolves to the search of flowers.py with the --set
    options of the measured CPU run (flowers-scratch-96bf16b in results/flowers.md)."""
    sets = ["data.image_size=96", "train.amp=true", "budget.num_samples=10", "budget.max_epochs=20",
            "budget.cpus_per_trial=1", "budget.gpus_per_trial=0", "budget.time_budget_s=1500",
            "options.backbones=tutorial_cnn,resnet10t", "options.mixup_alpha=0", "options.cutmix_alpha=0",
            "options.aug_strength=0.5,1.5", "options.lr=3e-4,5e-3", "options.drop_path_rate=0,0.1"]
    extended, overridden = load_recipe(RECIPES / "flowers_cpu.py"), load_recipe(RECIPES / "flowers.py", sets)
    assert len((RECIPES / "flowers_cpu.py").read_text().splitlines()) <= 13
    for key in ("seed", "data", "train", "budget", "options"):
        assert extended.resolved()[key] == overridden.resolved()[key], key


@pytest.mark.slow
def test_a_recipe_extending_flowers_runs(tmp_path):
    """flowers_cpu.py, on a tiny folder with the five flower classes (the real archive is too big for a test)."""
    from PIL import Image

    from hpsearch.cli import main

    rng = np.random.default_rng(0)
    for name in FLOWERS.data.classes:
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), np.uint8)).save(tmp_path / "photos" / name / f"{i}.jpg")
    argv = ["tune", str(RECIPES / "flowers_cpu.py"), "--out", str(tmp_path / "run"), "--set",
            f"data.root={tmp_path / 'photos'}", "--set", "data.min_images=0", "--set", "data.image_size=32",
            "--num-samples", "1", "--max-epochs", "1", "--set", "budget.grace_period=1"]
    assert main(argv) == 0
    recipe_copy = (tmp_path / "run" / "recipe.py").read_text()
    assert "hpsearch part: " + str(RECIPES / "flowers.py") in recipe_copy  # both files, as they ran
