"""``hpsearch evaluate``: the one step that reads the test split; every model of ``ensembles/`` side by side.

Each model (the best single trial and every ensemble, with and without test-time augmentation, and any refit of
one on training + validation images) is scored on the test images: accuracy with a Wilson interval, McNemar
against the best single trial, log-loss and ECE before and after its validation-fit temperature, and what one
image costs. ``chosen_by_validation`` marks the model validation chose, ``ships`` the one ``--model auto`` gives
(its refit, where one was made).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ensembles import log_loss, scale_probabilities
from hpsearch.data import ImageArrays, TestSplitKey
from hpsearch.ensemble import (
    chosen_model,
    combiner_input,
    ensemble_combiner,
    ordered_records,
    record_models,
    shipped_model,
    used_positions,
)
from hpsearch.evaluation.metrics import (
    classification_metrics,
    confusion_table,
    ece_change_ci,
    expected_calibration_error,
    mcnemar,
    per_class_table,
)
from hpsearch.io import atomic_write
from hpsearch.models import count_parameters
from hpsearch.rundir import (
    BEST_SINGLE,
    EVALUATION_DIR,
    TEST_METRICS_FILE,
    EnsembleRecord,
    RunDir,
    SavedModel,
    write_table,
)
from hpsearch.training import predict_proba


@dataclass(frozen=True)
class ModelOutput:
    """One model's class probabilities on a set of images, with what it cost to compute them."""

    probs: np.ndarray
    ms_per_image: float
    parameters: int


class Predictor:
    """Probabilities per saved model (and test-time views) on one set of images, computed once each."""

    def __init__(self, run: RunDir, arrays: ImageArrays):
        self.run, self.arrays = run, arrays
        self._cache: dict[tuple[Path, tuple[str, ...]], ModelOutput] = {}

    def __call__(self, saved: SavedModel, views: tuple[str, ...] = ()) -> ModelOutput:
        key = (saved.folder, views)
        if key not in self._cache:
            model = self.run.model(saved)
            start = time.perf_counter()
            probs = predict_proba(model, self.arrays, saved.normalizer(), 256, torch.device("cpu"), views,
                                  self.run.data_config.crop)
            ms = 1000.0 * (time.perf_counter() - start) / max(1, len(self.arrays))
            self._cache[key] = ModelOutput(probs, ms, count_parameters(model))
        return self._cache[key]

    def model(self, record: EnsembleRecord, y_val: np.ndarray) -> tuple[np.ndarray, ModelOutput]:
        """The model's probabilities before and after its temperature; the cost counts only the members that
        carry weight."""
        models = record_models(self.run, record)
        outputs = {i: self(models[i], record.tta) for i in used_positions(record)}
        stack = combiner_input({i: o.probs for i, o in outputs.items()}, len(models))
        probs = ensemble_combiner(self.run, record, y_val)(stack)
        calibrated = scale_probabilities(probs, record.temperature)
        used = outputs.values()
        cost = ModelOutput(calibrated, sum(o.ms_per_image for o in used), sum(o.parameters for o in used))
        return probs, cost


def evaluate_run(run_dir: Path) -> pd.DataFrame:
    """Write ``test_metrics.csv`` and per-model confusion and per-class tables under ``evaluation/``."""
    run = RunDir(run_dir)
    y_val = run.arrays("val").labels
    records = ordered_records(run)
    chosen = chosen_model(run)
    ships = None if chosen is None else shipped_model(run, "auto").name
    test = run.arrays("test", key=TestSplitKey("evaluate"))  # the only place any stage reads the test split
    predict = Predictor(run, test)
    outputs = {r.name: predict.model(r, y_val) for r in records}
    best_correct = outputs[BEST_SINGLE][0].argmax(1) == test.labels
    rows = []
    for record in records:
        raw, output = outputs[record.name]
        row = {"model": record.name, "members": len(used_positions(record)),
               "tta": "+".join(record.tta), **classification_metrics(raw, test.labels, run.seed)}
        low, high = ece_change_ci(raw, output.probs, test.labels, run.seed)
        row.update({"temperature": record.temperature, "log_loss_calibrated": log_loss(output.probs, test.labels),
                    "ece_calibrated": expected_calibration_error(output.probs, test.labels),
                    "ece_change_ci_low": low, "ece_change_ci_high": high,
                    "mcnemar_p_vs_best_single": mcnemar(raw.argmax(1) == test.labels, best_correct),
                    "parameters": output.parameters, "ms_per_image": output.ms_per_image,
                    "val_accuracy_oof": None if record.refit else record.val_accuracy_oof,
                    "chosen_by_validation": record.name == chosen, "refit": bool(record.refit),
                    "ships": record.name == ships})
        rows.append(row)
        write_details(run, record.name, output.probs, test.labels)
    table = pd.DataFrame(rows)
    table.insert(1, "n_test", len(test.labels))
    write_table(run.path / TEST_METRICS_FILE, table)
    return table


def write_details(run: RunDir, name: str, probs: np.ndarray, labels: np.ndarray) -> None:
    out = run.path / EVALUATION_DIR
    atomic_write(out / f"confusion_{name}.csv", confusion_table(probs, labels, run.classes).to_csv())
    write_table(out / f"per_class_{name}.csv", per_class_table(probs, labels, run.classes))
