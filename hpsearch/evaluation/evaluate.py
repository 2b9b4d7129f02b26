"""``hpsearch evaluate``: the one step that reads the test split; best single trial vs every ensemble."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ensembles import AdaBoostSAMME

from hpsearch.evaluation.ensemble import ESTIMATORS, METHODS
from hpsearch.evaluation.metrics import classification_metrics, confusion_table, mcnemar, per_class_table
from hpsearch.evaluation.rundir import RunDir, SavedModel, model_probs
from hpsearch.io import atomic_write, read_json


class Predictor:
    """Test probabilities per saved model, computed once each, with their cost."""

    def __init__(self, run: RunDir, arrays):
        self.run, self.arrays = run, arrays
        self._cache: dict[Path, tuple[np.ndarray, float, int]] = {}

    def __call__(self, saved: SavedModel) -> tuple[np.ndarray, float, int]:
        if saved.folder not in self._cache:
            self._cache[saved.folder] = model_probs(saved, self.arrays, self.run)
        return self._cache[saved.folder]


def load_ensemble(run: RunDir, record: dict, y_val: np.ndarray):
    """Rebuild an ensemble from its JSON record: refit on the members' validation predictions."""
    members = [SavedModel(m["name"], run.path / m["path"]) for m in record["members"]]
    if "model" in record:  # a soup: one model
        return [SavedModel("soup", run.path / record["model"])], None
    if record["estimator"] == "AdaBoostSAMME":  # boosted on training data: its rounds are recorded
        return members, AdaBoostSAMME.from_rounds(record["alphas"], len(run.classes), record.get("train_errors"))
    stack = np.stack([m.val_probs for m in members])
    return members, ESTIMATORS[record["estimator"]](**record["params"]).fit(stack, y_val)


def ensemble_records(run: RunDir) -> list[dict]:
    folder = run.path / "ensembles"
    return [read_json(folder / f"{m}.json") for m in METHODS if (folder / f"{m}.json").is_file()]


def evaluate_run(run_dir: Path) -> pd.DataFrame:
    """Write ``test_metrics.csv`` and per-model confusion and per-class tables under ``evaluation/``."""
    run = RunDir(run_dir)
    y_val = run.arrays("val").labels
    test = run.arrays("test")  # the only place any stage reads the test split
    predict = Predictor(run, test)
    best_id = run.ranked_trials().iloc[0]["trial_id"]
    models: dict[str, tuple[np.ndarray, float, int, int]] = {}
    probs, ms, params = predict(run.trial_model(best_id))
    models["best_single"] = (probs, ms, params, 1)
    for record in ensemble_records(run):
        members, estimator = load_ensemble(run, record, y_val)
        outputs = [predict(m) for m in members]
        stack = np.stack([o[0] for o in outputs])
        combined = stack[0] if estimator is None else estimator.predict_proba(stack)
        # inference cost counts only the members that carry weight (greedy selection may drop some)
        used = [o for o, m in zip(outputs, record["members"]) if m["weight"] > 0] if estimator is not None else outputs
        models[record["method"]] = (combined, sum(o[1] for o in used), sum(o[2] for o in used), len(used))
    best_correct = models["best_single"][0].argmax(1) == test.labels
    rows = []
    out = run.path / "evaluation"
    for name, (probs, ms, params, n_members) in models.items():
        row = {"model": name, "members": n_members, **classification_metrics(probs, test.labels, seed=run.seed)}
        row["mcnemar_p_vs_best_single"] = mcnemar(probs.argmax(1) == test.labels, best_correct)
        row.update({"parameters": params, "ms_per_image": ms})
        rows.append(row)
        atomic_write(out / f"confusion_{name}.csv", confusion_table(probs, test.labels, run.classes).to_csv())
        atomic_write(out / f"per_class_{name}.csv", per_class_table(probs, test.labels, run.classes).to_csv(index=False))
    table = pd.DataFrame(rows)
    table.insert(1, "n_test", len(test.labels))
    atomic_write(run.path / "test_metrics.csv", table.to_csv(index=False))
    return table
