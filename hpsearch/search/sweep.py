"""``hpsearch sweep``: vary one regularization knob at a time around the best configuration."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pandas as pd

from hpsearch.config import field_types
from hpsearch.errors import HpsearchError, RecipeError, did_you_mean
from hpsearch.rundir import SWEEPS_DIR, RunDir, SavedModel, write_table
from hpsearch.search.grid import train_grid
from hpsearch.training import TrialConfig

log = logging.getLogger(__name__)
DEFAULT_VALUES = {
    "weight_decay": [0.0, 1e-3, 1e-2, 1e-1], "l1": [0.0, 1e-6, 1e-5, 1e-4], "drop_rate": [0.0, 0.25, 0.5],
    "drop_path_rate": [0.0, 0.1, 0.2], "label_smoothing": [0.0, 0.1, 0.2], "mixup_alpha": [0.0, 0.2, 0.8],
    "cutmix_alpha": [0.0, 0.5, 1.0], "aug_strength": [0.0, 1.0, 2.0],
}


def parse_knobs(params: list[str], values: list[str]) -> list[tuple[str, list[float]]]:
    """Pair each ``--param`` with its ``--values`` (in order); a knob without values gets the defaults."""
    if len(values) > len(params):
        raise HpsearchError("Each --values belongs to the --param before it; got more --values than --param.")
    knobs = []
    types = field_types(TrialConfig)
    for index, param in enumerate(params):
        if param not in DEFAULT_VALUES:
            raise HpsearchError(f"--param {param!r} is not a regularization knob.{did_you_mean(param, DEFAULT_VALUES)} "
                                f"Choose from {', '.join(DEFAULT_VALUES)}.")
        if index < len(values):
            try:
                grid = [float(v) for v in values[index].split(",") if v.strip()]
            except ValueError:
                raise HpsearchError(f"--values takes comma-separated numbers, but got {values[index]!r}.") from None
        else:
            grid = DEFAULT_VALUES[param]
        if len(grid) < 2:
            raise HpsearchError(f"A sweep of {param} needs at least two values, but got {grid}.")
        cast = int if types[param] is int else float
        for value in grid:
            try:
                dataclasses.replace(TrialConfig(), **{param: cast(value)}).validate()
            except RecipeError as err:
                raise HpsearchError(f"--values {value:g} for {param} is out of range ({err}).") from None
        knobs.append((param, [cast(v) for v in grid]))
    return knobs


def run_sweep(run_dir: Path, knobs: list[tuple[str, list[float]]], epochs: int | None = None,
              cpus_per_run: float = 1.0, address: str | None = None) -> dict[str, pd.DataFrame]:
    """Train the best configuration once per knob value (Ray Tune grid); write ``sweeps/<knob>.csv``."""
    run = RunDir(run_dir)
    best_row = run.ranked_trials().iloc[0]
    base = run.trial_model(best_row["trial_id"]).config
    base = dataclasses.replace(base, epochs=epochs or int(best_row["epochs"]))
    variants = [(param, value) for param, grid in knobs for value in grid]
    configs = [dataclasses.replace(base, **{param: value}) for param, value in variants]
    data = run.trial_data()
    out = run.path / SWEEPS_DIR
    log.info("sweep: %d runs of trial %s's configuration (%s, %d epochs): %s", len(configs), best_row["trial_id"],
             base.backbone, base.epochs, "; ".join(f"{p} in {g}" for p, g in knobs))
    folders = train_grid(configs, data, out / "runs", measure_train=True, cpus_per_run=cpus_per_run, address=address)
    rows = []
    for (param, value), folder in zip(variants, folders, strict=True):
        info = SavedModel(folder.name, folder).info
        rows.append({"param": param, "value": value, "train_acc": info["clean_train_acc"], "val_acc": info["val_acc"],
                     "gap": info["clean_train_acc"] - info["val_acc"], "best_epoch": info["epoch"],
                     "augmented_train_acc": info["train_acc"]})
    table = pd.DataFrame(rows)
    results = {}
    for param, _ in knobs:
        part = table[table["param"] == param].sort_values("value").reset_index(drop=True)
        write_table(out / f"{param}.csv", part)
        results[param] = part
    return results
