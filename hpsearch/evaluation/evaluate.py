"""``hpsearch evaluate``: the one step that reads the test split; best single trial vs every ensemble."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hpsearch.data import ImageArrays, TestSplitKey
from hpsearch.ensemble import METHODS, ensemble_combiner, record_models
from hpsearch.evaluation.metrics import classification_metrics, confusion_table, mcnemar, per_class_table
from hpsearch.io import atomic_write
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


def model_output(run: RunDir, saved: SavedModel, arrays: ImageArrays, batch_size: int = 256) -> ModelOutput:
    """Class probabilities of ``arrays`` under ``saved``, timed on the CPU."""
    in_chans, size = run.image_shape
    model = saved.build(len(run.classes), in_chans, size)
    start = time.perf_counter()
    probs = predict_proba(model, arrays, saved.normalizer(), batch_size, torch.device("cpu"))
    ms = 1000.0 * (time.perf_counter() - start) / max(1, len(arrays))
    return ModelOutput(probs, ms, sum(p.numel() for p in model.parameters()))


class Predictor:
    """Probabilities per saved model on one set of images, computed once each."""

    def __init__(self, run: RunDir, arrays: ImageArrays):
        self.run, self.arrays = run, arrays
        self._cache: dict[Path, ModelOutput] = {}

    def __call__(self, saved: SavedModel) -> ModelOutput:
        if saved.folder not in self._cache:
            self._cache[saved.folder] = model_output(self.run, saved, self.arrays)
        return self._cache[saved.folder]

    def ensemble(self, record: EnsembleRecord, y_val: np.ndarray) -> tuple[np.ndarray, ModelOutput]:
        """The ensemble's probabilities; the cost counts only the models that carry weight."""
        models = record_models(self.run, record)
        outputs = [self(m) for m in models]
        probs = ensemble_combiner(self.run, record, y_val)(np.stack([o.probs for o in outputs]))
        if record.model is None:
            outputs = [o for o, m in zip(outputs, record.members, strict=True) if m.weight > 0]
        cost = ModelOutput(probs, sum(o.ms_per_image for o in outputs), sum(o.parameters for o in outputs))
        return probs, cost


def ordered_records(run: RunDir) -> list[EnsembleRecord]:
    """The run's ensembles: registered methods in registry order, then any others by name."""
    records = run.records()
    return [records[m] for m in METHODS if m in records] + [r for m, r in records.items() if m not in METHODS]


def evaluate_run(run_dir: Path) -> pd.DataFrame:
    """Write ``test_metrics.csv`` and per-model confusion and per-class tables under ``evaluation/``."""
    run = RunDir(run_dir)
    y_val = run.arrays("val").labels
    records = ordered_records(run)
    test = run.arrays("test", key=TestSplitKey("evaluate"))  # the only place any stage reads the test split
    predict = Predictor(run, test)
    models = {BEST_SINGLE: predict(run.best_model())}
    members = {BEST_SINGLE: 1}
    for record in records:
        _, models[record.method] = predict.ensemble(record, y_val)
        members[record.method] = 1 if record.model is not None else len(record.used_members())
    best_correct = models[BEST_SINGLE].probs.argmax(1) == test.labels
    rows = []
    out = run.path / EVALUATION_DIR
    for name, output in models.items():
        row = {"model": name, "members": members[name], **classification_metrics(output.probs, test.labels, run.seed)}
        row["mcnemar_p_vs_best_single"] = mcnemar(output.probs.argmax(1) == test.labels, best_correct)
        row.update({"parameters": output.parameters, "ms_per_image": output.ms_per_image})
        rows.append(row)
        atomic_write(out / f"confusion_{name}.csv", confusion_table(output.probs, test.labels, run.classes).to_csv())
        write_table(out / f"per_class_{name}.csv", per_class_table(output.probs, test.labels, run.classes))
    table = pd.DataFrame(rows)
    table.insert(1, "n_test", len(test.labels))
    write_table(run.path / TEST_METRICS_FILE, table)
    return table
